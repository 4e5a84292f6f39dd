"""make_list must write the same .lst files, byte for byte, as MXNet's ``im2rec.py --list``."""

import logging
import os
import random
import subprocess
import sys

import cv2
import numpy as np
import pytest

from mxnet_recpack.sources.discover import list_images, make_list
from mxnet_recpack.errors import OptionError

from helpers import im2rec_script

# Root-level images (label 0 when not recursive), 3 classes below it, one in a sub-sub-folder,
# non-images, upper-case extensions, a folder with no image and a folder with only sub-folders.
FILES = (["top%d.jpg" % i for i in range(3)] + ["A.JPG", "b.png", "notes.txt", "noext"]
         + ["animals/cat/c%02d.jpg" % i for i in range(7)] + ["animals/cat/C7.PNG"]
         + ["dog/d%02d.png" % i for i in range(6)] + ["dog/d6.jpeg", "dog/readme.txt"]
         + ["bird/b%d.jpg" % i for i in range(4)] + ["empty/notes.txt"])

# (id, im2rec.py flags, make_list kwargs): one im2rec.py subprocess per case, run in parallel.
CASES = [
    ("flat", [], {}),
    ("recursive", ["--recursive"], dict(recursive=True)),
    ("no_shuffle", ["--recursive", "--no-shuffle"], dict(recursive=True, shuffle=False)),
    ("exts_png", ["--recursive", "--exts", ".png"], dict(recursive=True, exts=(".png",))),
    ("train_test", ["--recursive", "--train-ratio", "0.6", "--test-ratio", "0.2"],
     dict(recursive=True, train_ratio=0.6, test_ratio=0.2)),
    ("train_only", ["--recursive", "--train-ratio", "0.8"], dict(recursive=True, train_ratio=0.8)),
    # train_ratio + test_ratio == 1: im2rec.py writes _test.lst and _train.lst but no _val.lst.
    ("sum_one", ["--recursive", "--train-ratio", "0.7", "--test-ratio", "0.3"],
     dict(recursive=True, train_ratio=0.7, test_ratio=0.3)),
    ("chunks", ["--recursive", "--chunks", "3"], dict(recursive=True, chunks=3)),
    ("chunks_ratios", ["--recursive", "--chunks", "3", "--train-ratio", "0.6", "--test-ratio",
                       "0.2"], dict(recursive=True, chunks=3, train_ratio=0.6, test_ratio=0.2)),
    # More chunks than images: the last chunks are written empty.
    ("many_chunks", ["--chunks", "9", "--no-shuffle"], dict(chunks=9, shuffle=False)),
]


def _write_image(path, seed):
    pixels = np.random.RandomState(seed).randint(0, 256, (4, 5, 3), dtype=np.uint8)
    ok, buf = cv2.imencode(".png" if path.lower().endswith(".png") else ".jpg", pixels)
    assert ok
    with open(path, "wb") as f:
        f.write(buf.tobytes())


@pytest.fixture(scope="module")
def image_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("images"))
    for i, rel in enumerate(FILES):
        path = os.path.join(root, *rel.split("/"))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if rel.lower().endswith((".jpg", ".jpeg", ".png")):
            _write_image(path, i)
        else:
            with open(path, "w") as f:
                f.write("not an image\n")
    try:  # the recursive walk follows symlinks to folders: this becomes a fifth class
        os.symlink(os.path.join(root, "bird"), os.path.join(root, "zz_link"))
    except (OSError, NotImplementedError):
        pass
    return root


@pytest.fixture(scope="module")
def im2rec_outputs(image_root, tmp_path_factory):
    """Run every case's ``im2rec.py --list`` at once; map case id -> its output folder."""
    base = tmp_path_factory.mktemp("im2rec")
    procs = {}
    for case_id, flags, _ in CASES:
        out = base / case_id
        out.mkdir()
        cmd = [sys.executable, im2rec_script(), "--list", str(out / "data"), image_root] + flags
        procs[case_id] = (out, subprocess.Popen(cmd, stdout=subprocess.PIPE,
                                                stderr=subprocess.STDOUT, cwd=str(base)))
    outputs = {}
    for case_id, (out, proc) in procs.items():
        log = proc.communicate(timeout=120)[0].decode(errors="replace")
        assert proc.returncode == 0, "im2rec.py failed for %s:\n%s" % (case_id, log)
        outputs[case_id] = out
    return outputs


def _lst_files(folder):
    return {name: (folder / name).read_bytes() for name in os.listdir(folder)
            if name.endswith(".lst")}


@pytest.mark.parametrize("case_id, flags, kwargs", CASES, ids=[c[0] for c in CASES])
@pytest.mark.mxnet
def test_same_lst_files_as_im2rec(case_id, flags, kwargs, image_root, im2rec_outputs, tmp_path):
    expected = _lst_files(im2rec_outputs[case_id])
    state = random.getstate()
    written = make_list(image_root, str(tmp_path / "data"), **kwargs)
    assert random.getstate() == state, "make_list must not touch the global random state"
    got = _lst_files(tmp_path)
    assert sorted(got) == sorted(expected)
    assert sorted(os.path.basename(p) for p in written) == sorted(expected)
    for name in expected:
        assert got[name] == expected[name], name
    assert sum(len(data) for data in expected.values()) > 0


def test_classes_tsv(image_root, tmp_path):
    make_list(image_root, str(tmp_path / "data"), recursive=True)
    names = [".", os.path.join("animals", "cat"), "bird", "dog"]
    if os.path.islink(os.path.join(image_root, "zz_link")):
        names.append("zz_link")
    expected = "".join("%d\t%s\n" % (label, name) for label, name in enumerate(names))
    assert (tmp_path / "data.classes.tsv").read_text(encoding="utf-8") == expected

    make_list(image_root, str(tmp_path / "flat"), chunks=2, train_ratio=0.5)
    assert (tmp_path / "flat.classes.tsv").read_text(encoding="utf-8") == "0\t.\n"


def test_list_images(image_root):
    items, classes = list_images(image_root)
    assert items == [(0, "A.JPG", 0), (1, "b.png", 0), (2, "top0.jpg", 0), (3, "top1.jpg", 0),
                     (4, "top2.jpg", 0)]
    assert classes == ["."]
    items, classes = list_images(image_root, recursive=True, exts=(".jpeg",))
    assert items == [(0, os.path.join("dog", "d6.jpeg"), 0)]
    assert classes == ["dog"]


def test_no_image_writes_empty_lists_and_warns(tmp_path, caplog):
    (tmp_path / "imgs").mkdir()
    (tmp_path / "imgs" / "notes.txt").write_text("x")
    with caplog.at_level(logging.WARNING, logger="mxnet_recpack.sources.discover"):
        written = make_list(str(tmp_path / "imgs"), str(tmp_path / "out"), train_ratio=0.5)
    assert [os.path.basename(p) for p in written] == ["out_val.lst", "out_train.lst"]
    assert all(os.path.getsize(p) == 0 for p in written)
    assert "no image" in caplog.text


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(chunks=0), OptionError, r"chunks = 0 is not valid; expected an integer >= 1"),
    (dict(chunks=2.5), OptionError, r"chunks = 2.5 is not valid; expected an integer"),
    (dict(train_ratio=1.5), OptionError, r"train_ratio = 1.5 is not valid; expected a number "
                                         r"in \[0, 1\]"),
    (dict(test_ratio=-0.1), OptionError, r"test_ratio = -0.1 is not valid; expected a number "
                                         r"in \[0, 1\]"),
    (dict(train_ratio=float("nan")), OptionError, r"train_ratio = nan is not valid"),
    (dict(train_ratio=0.9, test_ratio=0.2), OptionError, r"train_ratio \+ test_ratio must be at "
                                                         r"most 1"),
    (dict(exts=()), OptionError, r"exts = \(\) is not valid; expected a non-empty sequence"),
    (dict(root="missing"), FileNotFoundError, r"image root folder .*missing.* does not exist"),
    (dict(root="file.txt"), NotADirectoryError, r"is not a folder"),
    (dict(prefix="nodir/data"), FileNotFoundError, r"output folder .*nodir.* does not exist"),
], ids=["chunks0", "chunks_float", "train_gt1", "test_neg", "nan", "sum_gt1", "no_exts",
        "root_missing", "root_file", "prefix_dir_missing"])
def test_validation_errors(kwargs, error, match, tmp_path):
    (tmp_path / "file.txt").write_text("x")
    root = str(tmp_path / kwargs.pop("root", "."))
    prefix = str(tmp_path / kwargs.pop("prefix", "data"))
    with pytest.raises(error, match=match):
        make_list(root, prefix, **kwargs)
    assert not [n for n in os.listdir(tmp_path) if n != "file.txt"], "nothing may be written"
