"""webdataset's tar shards, byte by byte: one sample per record, as POSIX tar members.

A sample is the members whose names share a prefix up to the first dot: ``KEY.jpg`` (the
image, under the extension of the format its bytes are in: ``.png``, ``.bmp``...), ``KEY.cls``
(the label as ASCII digits, when it is one integral number: what ``webdataset``'s
``.decode()`` and DALI's ``fn.readers.webdataset`` take as a class), and ``KEY.json`` (every
field of the RecordIO header: :func:`~mxnet_recpack.formats.sample.sample_metadata`, so nothing
is lost). ``KEY`` is the record key, zero-padded to 9 digits (more when it needs them).
InsightFace's label-only records are samples with only a ``.json``.

Members are ustar headers (512 bytes: name, mode 0644, size, mtime 0, owner 0/0, no user or
group names) followed by their data padded to 512 bytes; a shard ends with two zero blocks. The
bytes depend on the records alone, so the same input makes the same shards. Standard library.
"""

import json
import os
import tarfile

from ...errors import RecordFormatError
from ...format.header import label_problem
from ...images.encodings import extension, sniff
from ..sample import is_integral, sample_from_metadata, sample_metadata
from ..writing import write_all

__all__ = ["encode", "size_of", "ShardWriter", "scan", "read", "check", "sample_key", "BLOCK"]

BLOCK = 512
_END = b"\0" * (2 * BLOCK)
_IMAGE_EXTS = frozenset(extension(n)[1:] for n in ("jpeg", "png", "bmp", "tiff", "gif", "webp",
                                                   "pnm", "npy", "other")) | {"jpeg"}


def sample_key(key):
    """``__key__`` of a record: its key zero-padded to 9 digits."""
    return "%09d" % key


def _tar_header(name, size):
    """The ustar header ``tarfile`` writes for a regular file ``name`` of ``size`` bytes, mode
    0644, mtime 0, owner 0/0 (its bytes exactly); built from a template, since ``tarfile``'s
    own costs more than the rest of a record's conversion."""
    raw = name.encode("utf-8")
    if len(raw) > 100 or size >= 8 ** 11 or not raw.isascii():
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime, info.type = size, 0o644, 0, tarfile.REGTYPE
        return info.tobuf(format=tarfile.USTAR_FORMAT, encoding="utf-8", errors="strict")
    digits = b"%011o\0" % size
    head = bytearray(_TEMPLATE)
    head[:len(raw)] = raw
    head[124:136] = digits
    head[148:155] = b"%06o\0" % (_TEMPLATE_SUM + sum(raw) + sum(digits))
    return bytes(head)


def _template():
    info = tarfile.TarInfo("")
    info.size, info.mode, info.mtime, info.type = 0, 0o644, 0, tarfile.REGTYPE
    head = bytearray(info.tobuf(format=tarfile.USTAR_FORMAT, encoding="utf-8", errors="strict"))
    head[124:136] = b"\0" * 12
    head[148:156] = b" " * 8  # the checksum is summed over spaces in its own field
    return bytes(head), sum(head)


_TEMPLATE, _TEMPLATE_SUM = _template()


_PADS = [b"\0" * n for n in range(BLOCK)]


def _member(parts, name, data):
    parts += (_tar_header(name, len(data)), data, _PADS[-len(data) % BLOCK])


def encode(sample):
    """The tar members of one record: a list of buffers (headers, data, padding), written as
    they are, one after the other."""
    name = sample_key(sample.key)
    parts = []
    if len(sample.image):
        _member(parts, "%s%s" % (name, extension(sniff(sample.image))), bytes(sample.image))
    if is_integral(sample):
        _member(parts, name + ".cls", b"%d" % int(sample.label))
    meta = json.dumps(sample_metadata(sample), sort_keys=True).encode("ascii")
    _member(parts, name + ".json", meta)
    return parts


def size_of(encoded):
    return sum(len(b) for b in encoded)


class ShardWriter:
    """One tar shard being written at ``path`` (the caller names it and moves it into place)."""

    def __init__(self, path):
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        self.count = 0
        self.nbytes = 0

    def append(self, encoded):
        """Write a batch of :func:`encode`'d records, in order."""
        self.nbytes += write_all(self._fd, [b for parts in encoded for b in parts])
        self.count += len(encoded)

    def close(self):
        """End the archive (two zero blocks), flush it to the disk; the shard's summary."""
        if self._fd is None:
            return None
        try:
            os.write(self._fd, _END)
            os.fsync(self._fd)
        finally:
            os.close(self._fd)
            self._fd = None
        return {"path": self.path, "records": self.count, "bytes": self.nbytes + len(_END)}

    def abort(self):
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


#: Members that describe the next one (POSIX pax, GNU long names) or the archive: read for the
#: name and size they give, never samples themselves. webdataset's own TarWriter and Python's
#: tarfile write pax headers for long or non-ASCII names and fractional mtimes.
_NEXT_PAX, _GLOBAL_PAX = (tarfile.XHDTYPE, tarfile.SOLARIS_XHDTYPE), tarfile.XGLTYPE
_LONG_NAME, _LONG_LINK = tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK


def _headers(f, path, size):
    """``(name, data offset, size)`` of every member, from the headers alone."""
    at, pending = 0, {}
    while at + BLOCK <= size:
        f.seek(at)
        head = f.read(BLOCK)
        if head == b"\0" * BLOCK:
            return
        info = _plain_header(head) or _parsed_header(head, path, at)
        if at + BLOCK + info.size > size:
            raise RecordFormatError("tar member %r declares %d bytes but the shard ends first "
                                    "(an interrupted write?)" % (info.name, info.size),
                                    path=path, offset=at)
        if info.type in _NEXT_PAX + (_GLOBAL_PAX, _LONG_NAME, _LONG_LINK):
            data = f.read(info.size)
            if info.type in _NEXT_PAX:
                pending.update(_pax_fields(data, path, at))
            elif info.type == _LONG_NAME:
                pending["path"] = data.rstrip(b"\0").decode("utf-8", "surrogateescape")
        elif info.type not in (tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.DIRTYPE):
            raise RecordFormatError("tar member %r is not a regular file (type %r): webdataset "
                                    "shards hold files only" % (info.name, info.type), path=path,
                                    offset=at)
        else:
            length = int(pending.get("size", info.size))
            if at + BLOCK + length > size:
                raise RecordFormatError("tar member %r declares %d bytes but the shard ends "
                                        "first (an interrupted write?)" % (info.name, length),
                                        path=path, offset=at)
            if info.type != tarfile.DIRTYPE:
                yield pending.get("path", info.name), at + BLOCK, length
            info.size, pending = length, {}
        at += BLOCK + info.size + (-info.size % BLOCK)
    if at < size:
        raise RecordFormatError("the shard ends inside a tar header (an interrupted write?)",
                                path=path, offset=at)


class _Member:
    __slots__ = ("name", "size", "type")

    def __init__(self, name, size, type):
        self.name, self.size, self.type = name, size, type


_USTAR = (b"ustar\x0000", b"ustar  \x00")


def _plain_header(head):
    """A regular file's ustar header (what recpack and most writers make), read directly; None
    for anything else (``tarfile`` reads those, and says what is wrong)."""
    kind = head[156:157]
    if kind not in (b"0", b"\0") or head[257:265] not in _USTAR or head[124] & 0x80:
        return None
    try:
        size = int(head[124:136].split(b"\0", 1)[0].strip() or b"0", 8)
        stored = int(head[148:156].split(b"\0", 1)[0].strip(), 8)
    except ValueError:
        return None
    if stored != sum(head) - sum(head[148:156]) + 256:  # the checksum, over 8 spaces
        return None
    name = head[:100].split(b"\0", 1)[0]
    prefix = head[345:500].split(b"\0", 1)[0] if head[257:263] == b"ustar\x00" else b""
    if prefix:
        name = prefix + b"/" + name
    return _Member(name.decode("utf-8", "surrogateescape"), size, tarfile.REGTYPE)


def _parsed_header(head, path, at):
    try:
        return tarfile.TarInfo.frombuf(head, "utf-8", "surrogateescape")
    except tarfile.HeaderError as exc:
        raise RecordFormatError("not a tar member header (%s): the shard is damaged, or not "
                                "a tar file" % exc, path=path, offset=at) from None


def _pax_fields(data, path, at):
    """The ``path`` and ``size`` of a pax extended header (records ``LEN key=value\\n``)."""
    fields, pos = {}, 0
    while pos < len(data) and data[pos:pos + 1] != b"\0":
        length, _, rest = data[pos:pos + 20].partition(b" ")
        try:
            n = int(length)
            key, _, value = data[pos + len(length) + 1:pos + n - 1].partition(b"=")
        except ValueError:
            raise RecordFormatError("a damaged pax header (%r)" % bytes(data[pos:pos + 40]),
                                    path=path, offset=at) from None
        if n <= 0 or not rest:
            raise RecordFormatError("a damaged pax header", path=path, offset=at)
        if key in (b"path", b"size"):
            fields[key.decode()] = value.decode("utf-8", "surrogateescape")
        pos += n
    if "size" in fields and not fields["size"].isdigit():
        raise RecordFormatError("a pax header gives size %r" % fields["size"], path=path,
                                offset=at)
    return fields


def _split(name):
    """``("dir/000000123", "jpg")``: a member's sample prefix and its extension."""
    folder, base = os.path.split(name)
    stem, dot, ext = base.partition(".")
    return (os.path.join(folder, stem) if folder else stem), (ext if dot else "")


def scan(path):
    """Locators of every sample of a shard, in order: ``{extension: (offset, size)}`` of its
    members, with ``"__key__"``. Raises :class:`RecordFormatError` for a shard whose members
    do not group into samples (a tar that is not a webdataset)."""
    samples, order = {}, []
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        previous = None
        for name, offset, length in _headers(f, path, size):
            prefix, ext = _split(name)
            if not ext:
                raise RecordFormatError("tar member %r has no extension: a webdataset sample is "
                                        "KEY.EXT members (KEY.jpg, KEY.cls, ...)" % name,
                                        path=path, offset=offset - BLOCK)
            if prefix != previous and prefix in samples:
                raise RecordFormatError("the members of sample %r are not together (a tar that is "
                                        "not a webdataset: its files must be grouped by key)"
                                        % prefix, path=path, offset=offset - BLOCK)
            if prefix not in samples:
                samples[prefix] = {"__key__": prefix}
                order.append(prefix)
            if ext in samples[prefix]:
                raise RecordFormatError("sample %r has two %r members" % (prefix, ext),
                                        path=path, offset=offset - BLOCK)
            samples[prefix][ext] = (offset, length)
            previous = prefix
    return [samples[p] for p in order]


def own_metadata(path, locator, fd=None):
    """The header fields of a sample recpack wrote (its ``.json`` has them), else None."""
    if "json" not in locator:
        return None
    offset, size = locator["json"]
    if fd is None:
        with open(path, "rb") as f:
            raw = os.pread(f.fileno(), size, offset)
    else:
        raw = os.pread(fd, size, offset)
    return _own_fields(raw)


def _own_fields(raw):
    try:
        meta = json.loads(bytes(raw))
    except ValueError:
        return None
    if isinstance(meta, dict) and all(k in meta for k in ("key", "flag", "label", "id", "id2")):
        return meta
    return None


def read(path, locator, *, position=0, label=None, fd=None):
    """The Sample of a scanned sample: from its ``.json`` when recpack wrote it; otherwise (a
    shard another tool wrote) key = ``position`` (its place in the shard set), the label from
    ``.cls`` (or ``label``, a default for samples without one), the image from the first member
    with an image extension."""
    own = fd is None
    fd = os.open(path, os.O_RDONLY) if own else fd
    try:
        spans = [v for k, v in locator.items() if k != "__key__"]
        start = min(o for o, _ in spans)
        blob = memoryview(os.pread(fd, max(o + n for o, n in spans) - start, start))

        def member(ext):  # the members of a sample lie together: one read for them all
            offset, size = locator[ext]
            return blob[offset - start:offset - start + size]
        image = next((e for e in locator if e in _IMAGE_EXTS), None)
        data = member(image) if image else b""
        meta = _own_fields(member("json")) if "json" in locator else None
        if meta is not None:
            try:
                return sample_from_metadata(meta, data)
            except (ValueError, KeyError, TypeError) as exc:
                raise RecordFormatError("sample %r: its .json header fields are damaged (%s)"
                                        % (locator["__key__"], exc), path=path) from None
        return _foreign(path, locator, data, position, label, member)
    finally:
        if own:
            os.close(fd)


def _foreign(path, locator, data, position, label, member):
    from ..sample import Sample
    if "cls" in locator:
        text = bytes(member("cls")).strip()
        try:
            value = float(int(text))
        except ValueError:
            raise RecordFormatError("sample %r: its .cls holds %r, not an integer class"
                                    % (locator["__key__"], text[:40]), path=path) from None
        problem = label_problem(value)
        if problem:  # RecordIO labels are float32
            raise RecordFormatError("sample %r: %s" % (locator["__key__"], problem), path=path)
    elif label is not None:
        value = float(label)
    else:
        raise RecordFormatError("sample %r has no label (no .cls, no recpack .json): name a "
                                "default label (--label 0) to convert it" % locator["__key__"],
                                path=path)
    if not data:
        raise RecordFormatError("sample %r has no image member (.jpg, .png, ...)"
                                % locator["__key__"], path=path)
    return Sample(int(position), 0, value, int(position), 0, bytes(data), None)


def check(path):
    """Every member header of a shard walked and its samples grouped; raises
    :class:`RecordFormatError` naming the offset of the first problem."""
    return len(scan(path))
