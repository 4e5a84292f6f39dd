"""Shared fixtures: real photos from scikit-image/scikit-learn, small image folders and lists."""
import os
import subprocess
import sys

import mxnet
import numpy as np
import pytest

from mxnet_recpack.samples import make_image_folder, sample_photos

#: MXNet's own im2rec.py, shipped inside the mxnet wheel: the reference we compare with.
IM2REC = os.path.join(os.path.dirname(mxnet.__file__), "tools", "im2rec.py")


def run_all(commands, cwd=None, timeout=300):
    """Run commands concurrently; return their CompletedProcess-like (returncode, out, err)."""
    procs = [subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for cmd in commands]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=timeout)
        results.append((p.returncode, out, err))
    return results


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


@pytest.fixture(scope="session")
def photos():
    return sample_photos()


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory):
    """A folder of 3 classes x 6 JPEGs (300-640 px), and a .lst over it with shuffled keys."""
    root = tmp_path_factory.mktemp("images")
    files = make_image_folder(str(root), classes=3, per_class=6, seed=1)
    rng = np.random.RandomState(0)
    keys = rng.permutation(1000)[:len(files)] + 5
    rows = [(int(k), float(rel.split(os.sep)[0].split("_")[1]), rel)
            for k, rel in zip(keys, files)]
    lst = write_lst(root / "list.lst", rows)
    return str(root), lst, rows
