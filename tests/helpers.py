"""Shared test helpers, importable in every environment (MXNet is imported only by the helpers
that read with MXNet's own readers, and only when called)."""
import hashlib
import importlib.util
import os
import subprocess
import sys

import numpy as np


def have(module):
    """True when ``module`` can be imported here (without importing it; a dotted name imports
    its packages, and a package that fails to import is not had)."""
    try:
        return importlib.util.find_spec(module) is not None
    except Exception:  # noqa: BLE001 - ImportError, or whatever a broken package raises
        return False


def im2rec_script():
    """MXNet's own tools/im2rec.py, shipped inside the mxnet wheel: the reference."""
    return os.path.join(os.path.dirname(importlib.util.find_spec("mxnet").origin), "tools",
                        "im2rec.py")


def run_all(commands, cwd=None, timeout=300, env=None):
    """Run commands concurrently; return their (returncode, out, err)."""
    procs = [subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=env) for cmd in commands]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=timeout)
        results.append((p.returncode, out, err))
    return results


def read(path):
    """A file's bytes."""
    with open(path, "rb") as f:
        return f.read()


def digest(*paths):
    """sha256 of the files' bytes, concatenated."""
    h = hashlib.sha256()
    for p in paths:
        h.update(read(p))
    return h.hexdigest()


def idx_of(rec):
    return str(rec)[:-4] + ".idx"


def keys_of(rec):
    """The keys of a .rec/.idx pair, in file order, as MXNet's MXIndexedRecordIO reads them."""
    import mxnet
    r = mxnet.recordio.MXIndexedRecordIO(idx_of(rec), str(rec), "r")
    keys = list(r.keys)
    r.close()
    return keys


def recpack_cmd(*args):
    """The recpack CLI as a subprocess command line (the installed console script's code)."""
    return [sys.executable, "-m", "mxnet_recpack"] + [str(a) for a in args]


def write_lst(path, rows):
    """Write an im2rec list: rows of (key, labels, relpath)."""
    with open(path, "w") as f:
        for key, labels, rel in rows:
            if np.isscalar(labels):
                labels = [labels]
            f.write("%d\t%s\t%s\n" % (key, "\t".join("%f" % x for x in labels), rel))
    return str(path)


def solid(rgb, h=24, w=32):
    """An H x W x 3 uint8 image of one RGB colour."""
    img = np.zeros((h, w, 3), np.uint8)
    img[:] = rgb
    return img


def write_arrays(rec, images, labels=None, **writer_options):
    """Write numpy RGB images (and labels) as records keyed 0, 1, 2... without MXNet (what
    ``ArrayDataset(images, labels).to_recordio(rec)`` writes)."""
    from mxnet_recpack import RecordFileWriter
    labels = [0.0] * len(images) if labels is None else labels
    with RecordFileWriter(str(rec), **writer_options) as w:
        w.write_dataset([(np.asarray(img), label) for img, label in zip(images, labels)])
    return str(rec)


def noise_jpegs(n, size=24, seed=0):
    """``n`` JPEG-encoded noise images (bytes), each different."""
    import cv2
    rng = np.random.RandomState(seed)
    return [cv2.imencode(".jpg", rng.randint(0, 255, (size, size, 3)).astype(np.uint8))[1]
            .tobytes() for _ in range(n)]


def _tiff(entries, order):
    """A TIFF block with one IFD of ``(tag, type, value)`` entries: type 2 (ASCII bytes),
    3 (SHORT), 5 (RATIONAL, a pair); values longer than 4 bytes after the IFD."""
    import struct
    size = {2: 1, 3: 2, 5: 8}
    ifd, extra = b"", b""
    data_at = 8 + 2 + 12 * len(entries) + 4
    for tag, kind, value in entries:
        raw = value if kind == 2 else (struct.pack(order + "H", value) if kind == 3 else
                                       struct.pack(order + "II", *value))
        count = len(raw) // size[kind]
        if len(raw) <= 4:
            field = raw + b"\0" * (4 - len(raw))
        else:
            field = struct.pack(order + "I", data_at + len(extra))
            extra += raw + b"\0" * (len(raw) % 2)
        ifd += struct.pack(order + "HHI", tag, kind, count) + field
    head = (b"II*\0" if order == "<" else b"MM\0*") + struct.pack(order + "I", 8)
    return head + struct.pack(order + "H", len(entries)) + ifd + b"\0\0\0\0" + extra


def exif_jpeg(rgb, orientation, layout="camera", quality=92):
    """A JPEG of the RGB image ``rgb`` with a camera's EXIF block (make, model, resolution)
    whose Orientation tag is ``orientation`` (6: turn a quarter clockwise to show it, 8: the
    other way, 3: half a turn, 5: mirrored and turned). ``layout`` 'camera': the EXIF segment
    right after the start marker (camera originals; little-endian EXIF); 'jfif': a JFIF
    segment first, then the EXIF one (as PIL and editors save; big-endian EXIF)."""
    import struct

    import cv2
    data = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                        [cv2.IMWRITE_JPEG_QUALITY, quality])[1].tobytes()
    assert data[2:4] == b"\xff\xe0" and data[6:11] == b"JFIF\0"  # OpenCV writes JFIF first
    jfif_end = 4 + struct.unpack(">H", data[4:6])[0]
    order = "<" if layout == "camera" else ">"
    tiff = _tiff([(0x010F, 2, b"Recpack\0"), (0x0110, 2, b"Test Camera 1\0"),
                  (0x0112, 3, orientation), (0x011A, 5, (72, 1)), (0x011B, 5, (72, 1)),
                  (0x0128, 3, 2)], order)
    app1 = b"\xff\xe1" + struct.pack(">H", len(tiff) + 8) + b"Exif\0\0" + tiff
    if layout == "camera":
        return data[:2] + app1 + data[jfif_end:]
    assert layout == "jfif", layout
    return data[:jfif_end] + app1 + data[jfif_end:]
