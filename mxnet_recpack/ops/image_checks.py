"""What ``verify`` checks in one record's image: a format MXNet's own decoder reads, complete
headers, and a decode without libjpeg's corrupt-data warnings; and what it notes: libjpeg's
other warnings, and JPEGs that carry an EXIF orientation (MXNet's readers disagree on them).

libjpeg reports damaged entropy data ("Corrupt JPEG data: 42 extraneous bytes before marker
0xd9") on stderr and still returns an image whose pixels are wrong, so the decode runs with the
process's stderr (file descriptor 2) captured. That is one process-wide descriptor: decodes run
one at a time per process, in worker processes when ``verify`` decodes in parallel.
"""

import io
import os
from collections import namedtuple

import numpy as np

from ..errors import BadImageError
from ..format.reader import RecordFile
from ..images.encodings import ENCODINGS, sniff
from ..images.exif import mxnet_decodes_as_stored
from ..images.opencv import load
from ..images.probe import check_image_bytes

__all__ = ["image_problem", "DecodeChecks", "JPEG_DAMAGE", "Oriented", "ImageNotes"]

#: libjpeg warnings that mean the stored bytes are damaged (the decoded pixels are wrong).
JPEG_DAMAGE = ("Corrupt JPEG data", "Premature end of JPEG file")

#: A note on a JPEG whose EXIF orientation turns or mirrors it (2-8): ``as_stored`` when
#: ``mx.image.imdecode`` ignores it (the JPEG begins with a JFIF segment).
Oriented = namedtuple("Oriented", ["orientation", "as_stored"])


class _CapturedStderr:
    """What C libraries print on file descriptor 2 while the block runs."""

    def __enter__(self):
        self._read, write = os.pipe()
        os.set_blocking(self._read, False)
        self._saved = os.dup(2)
        os.dup2(write, 2)
        os.close(write)
        return self

    def __exit__(self, *exc):
        os.dup2(self._saved, 2)
        os.close(self._saved)
        chunks = []
        while True:
            try:
                chunk = os.read(self._read, 65536)
            except BlockingIOError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        os.close(self._read)
        self.text = b"".join(chunks).decode("utf-8", "replace")
        return False


def image_problem(body, *, decode=True, accept_jpeg_warnings=False):
    """``(problem, notes)`` for one record's image bytes: the problem (None when there is
    none) and a tuple of notes (strings, and an :data:`Oriented` for a JPEG whose EXIF
    orientation readers disagree on). ``decode=False`` checks formats and headers only."""
    data = bytes(body)
    name = sniff(data)
    if name == "npy":
        try:
            if decode:
                np.load(io.BytesIO(data), allow_pickle=False)
            else:
                np.lib.format.read_magic(io.BytesIO(data))
        except Exception as exc:  # noqa: BLE001 - reported, not raised
            return "stored .npy array does not load: %s" % exc, ()
        return None, ()
    if not ENCODINGS[name].mxnet_decodes:
        return ("%s: MXNet's decoder (ImageRecordIter, ImageRecordDataset) cannot read this "
                "format, and ImageRecordIter dies on it; repack the image as JPEG or PNG"
                % ("not an image (its first bytes match no image format)" if name == "other"
                   else name.upper() + " image"), ())
    try:
        info = check_image_bytes(data, max_pixels=None)
    except BadImageError as exc:
        return str(exc), ()
    notes = ()
    if name == "jpeg" and info.orientation in range(2, 9):
        notes = (Oriented(info.orientation, mxnet_decodes_as_stored(data)),)
    if not decode:
        return None, notes
    cv2 = load()
    with _CapturedStderr() as err:
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None:
        return "image does not decode", ()
    said = " ".join(err.text.split())
    if name == "jpeg" and said:
        if any(s in said for s in JPEG_DAMAGE) and not accept_jpeg_warnings:
            return ("damaged JPEG data: libjpeg says %r; the decoded pixels are not the "
                    "stored image's (accept with --accept-jpeg-warnings)" % said), ()
        return None, ("libjpeg says %r" % said,) + notes
    return None, notes


class ImageNotes:
    """``verify``'s notes on images: libjpeg's warnings one by one (at most ``limit``), and
    one line for every JPEG that carries an EXIF orientation."""

    def __init__(self, limit):
        self.limit, self.lines, self.oriented, self.first, self.as_stored = limit, [], 0, [], 0

    def add(self, offset, key, notes):
        for note in notes:
            if isinstance(note, Oriented):
                self.oriented += 1
                self.as_stored += note.as_stored
                if len(self.first) < 5:
                    self.first.append(key)
            elif len(self.lines) < self.limit:
                self.lines.append("byte offset %d (key %d): %s" % (offset, key, note))

    def notes(self):
        """The notes, the orientation line last."""
        if not self.oriented:
            return list(self.lines)
        mx = ("mx.image.imdecode (Gluon's ImageRecordDataset, InsightFace, GluonCV) leaves "
              "%d of them as stored (those that begin with a JFIF segment)" % self.as_stored
              if self.as_stored else "so does mx.image.imdecode (none begins with a JFIF "
              "segment), but readers that ignore EXIF (PIL, cv2.IMREAD_UNCHANGED) do not")
        return self.lines + [
            "%d JPEG(s) carry an EXIF orientation that turns or mirrors them (keys %s%s): "
            "ImageRecordIter, DALI and RecordDataset (by default) apply it; %s. "
            "RecordDataset(exif=...) follows either; `recpack rewrite` stores them upright "
            "for every reader" % (self.oriented, ", ".join(map(str, self.first)),
                                  ", ..." if self.oriented > 5 else "", mx)]


class DecodeChecks:
    """The decode checks of a file's image records, by position: picklable, so worker
    processes (any start method) run them on their own file handle."""

    def __init__(self, rec_path, offsets, keys, *, accept_jpeg_warnings=False):
        self.rec_path = rec_path
        self.offsets = offsets
        self.keys = keys
        self.accept = accept_jpeg_warnings
        self.dataset = self
        self.gil_free = False
        self.source_of = None
        self._file = None

    def __getstate__(self):
        return dict(self.__dict__, _file=None)

    def __len__(self):
        return len(self.offsets)

    def key(self, i):
        return int(self.keys[i])

    def describe(self, i):
        return "key %d, byte offset %d" % (self.keys[i], self.offsets[i])

    def __getitem__(self, i):
        if self._file is None or self._file[0] != os.getpid():
            self._file = (os.getpid(), RecordFile(self.rec_path, idx_path=False))
        header, body = self._file[1].read_image_at(int(self.offsets[i]))
        return i, image_problem(body, accept_jpeg_warnings=self.accept)
