"""The files every environment writes the same way, byte for byte: written in the MXNet
environment (and checked there by MXNet's readers), then written again without MXNet, on numpy
2, on newer Pythons, and compared (see test_cross_environment.py)."""
import os
import subprocess
import sys

import numpy as np

import mxnet_recpack as rp
from mxnet_recpack import RecordFileWriter
from mxnet_recpack.format.framing import MAGIC_BYTES

#: ``recpack im2rec`` flags of each file written from the image folder.
CLI_CASES = {
    "default": [],
    "png48": ["--resize", "48", "--encoding", ".png"],
    "pass": ["--pass-through"],
    "gray": ["--color", "0", "--resize", "40", "--center-crop"],
    "parts": ["--nsplit", "2", "--resize", "32", "--num-thread", "2"],
}


def write_golden(out):
    """Write every golden file under ``out``; return their names, sorted."""
    images = os.path.join(out, "images")
    rp.samples.make_image_folder(images, classes=2, per_class=4, long_side=(90, 160), seed=7)
    lists = os.path.join(out, "lists")
    os.makedirs(lists)
    base = rp.make_list(images, os.path.join(lists, "base"), recursive=True)[0]
    for name, flags in CLI_CASES.items():
        with open(base) as f, open(os.path.join(lists, name + ".lst"), "w") as g:
            g.write(f.read())
        cmd = [sys.executable, "-m", "mxnet_recpack", "im2rec", "-q"] + flags + [
            os.path.join(lists, name), images]
        subprocess.run(cmd, check=True)
    rng = np.random.RandomState(3)
    with RecordFileWriter(os.path.join(out, "tensors.rec"), encoding=".npy") as w:
        for i in range(4):
            w.write(rng.standard_normal((3, 8, 8)).astype(np.float32), [i, i / 3])
    with RecordFileWriter(os.path.join(out, "by_hand.rec"), encoding=".png") as w:
        w.write(rng.randint(0, 255, (20, 30, 3)).astype(np.uint8), [2, 5, 0, .1, .2, .5, .6])
        w.write(rng.randint(0, 255, (20, 30)).astype(np.uint8), 7)
        w.write(MAGIC_BYTES * 3 + b"tail", 1.5, key=9)  # continuation frames
    names = []
    for folder, _, files in os.walk(out):
        for name in files:
            if name.endswith((".rec", ".idx", ".lst", ".tsv")):
                names.append(os.path.relpath(os.path.join(folder, name), out))
    return sorted(names)
