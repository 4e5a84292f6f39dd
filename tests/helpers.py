"""Shared test helpers, importable in every environment (MXNet is imported only by the helpers
that read with MXNet's own readers, and only when called)."""
import hashlib
import importlib.util
import os
import subprocess
import sys

import numpy as np


def have(module):
    """True when ``module`` can be imported here (without importing it)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
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
