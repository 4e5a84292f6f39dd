"""Everything that does not need Gluon works without MXNet, on numpy 1.x and 2.x: the recpack
command, im2rec(...) with no transform or a plain function, RecordFileWriter over any sequence,
reading back. These tests run in every environment; each file is read back by a reader that is
not ours (MXNet's where it is installed, NVIDIA DALI's elsewhere)."""
import importlib.metadata
import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

import mxnet_recpack as rp
from helpers import read, recpack_cmd, run_all, solid, write_arrays, write_lst
from mxnet_recpack import RecordDataset, RecordFileWriter

COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (250, 200, 10)]


def test_import_is_cheap_and_never_imports_mxnet():
    code = ("import sys, mxnet_recpack as rp; assert 'mxnet' not in sys.modules; "
            "assert 'cv2' not in sys.modules and 'numpy' not in sys.modules; "
            "from mxnet_recpack import RecordFileWriter, ImageList, RecordDataset, im2rec; "
            "assert 'mxnet' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_package_requires_neither_mxnet_nor_a_numpy_ceiling():
    """What pip reads: no mxnet unless the [mxnet] extra is asked for, no numpy upper bound,
    no Python upper bound, the headless OpenCV."""
    meta = importlib.metadata.metadata("mxnet_recpack")
    requires = importlib.metadata.requires("mxnet_recpack")
    plain = [r for r in requires if "extra ==" not in r]
    assert not any(r.startswith("mxnet") for r in plain)
    numpy = [r for r in plain if r.startswith("numpy")]
    assert numpy and "<" not in numpy[0]
    assert any(r.startswith("opencv-python-headless") for r in plain)
    assert "<" not in (meta["Requires-Python"] or "")
    mx = [r for r in requires if 'extra == "mxnet"' in r]
    assert any(r.startswith("mxnet==1.9.1") for r in mx)
    assert any(r.startswith("numpy<1.24") for r in mx)


def test_cli_lists_packs_verifies_inspects_extracts_and_indexes(tmp_path, real_reader):
    rp.samples.make_image_folder(str(tmp_path / "img"), classes=2, per_class=4,
                                 long_side=(120, 200))
    prefix = tmp_path / "data"
    steps = [("im2rec", "--list", "--recursive", prefix, tmp_path / "img"),
             ("im2rec", "--resize", "48", "--num-thread", "2", prefix, tmp_path / "img"),
             ("verify", tmp_path / "data.rec"),
             ("inspect", "--json", tmp_path / "data.rec"),
             ("extract", tmp_path / "data.rec", tmp_path / "out")]
    outputs = []
    for step in steps:
        code, out, err = run_all([recpack_cmd(*step)])[0]
        assert code == 0, (step, out, err)
        outputs.append(out)
    assert "8 records" in outputs[1]
    assert "OK, 8 records (8 images), all images decode, checksums match" in outputs[2]
    info = json.loads(outputs[3])
    assert info["records"] == 8 and info["sizes"]["height"]["min"] == 48
    rows = [line.split("\t") for line in (tmp_path / "data.lst").read_text().splitlines()]
    records = real_reader(str(tmp_path / "data.rec"))
    assert [r[0] for r in records] == [float(row[1]) for row in rows]
    assert all(min(r[2].shape[:2]) == 48 for r in records)
    idx = read(tmp_path / "data.idx")
    os.remove(tmp_path / "data.idx")
    assert run_all([recpack_cmd("index", tmp_path / "data.rec")])[0][0] == 0
    assert read(tmp_path / "data.idx") == idx
    assert sorted(os.listdir(tmp_path / "out")) == sorted(
        ["data.lst"] + ["%s.jpg" % row[0] for row in rows])


def mirror(image):
    """A plain (non-Gluon) transform: it receives numpy H x W x 3 RGB."""
    assert isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[2] == 3
    return np.ascontiguousarray(image[:, ::-1])


def test_im2rec_with_no_transform_and_with_a_plain_function(tmp_path, image_folder,
                                                            real_reader):
    root, lst, rows = image_folder
    plain = rp.im2rec(lst, None, {"root": root, "resize": 40, "encoding": ".png",
                                  "num_thread": 2}, str(tmp_path / "plain"))
    mirrored = rp.im2rec(lst, mirror, {"root": root, "resize": 40, "encoding": ".png",
                                       "num_thread": 2}, str(tmp_path / "mirrored"))
    a, b = real_reader(plain), real_reader(mirrored)
    assert len(a) == len(b) == len(rows)
    for (label, _, pixels), (label2, _, flipped), (_key, lab, rel) in zip(a, b, rows):
        assert label == label2 == lab
        np.testing.assert_array_equal(flipped, pixels[:, ::-1])
        src = cv2.imread(os.path.join(root, rel), cv2.IMREAD_COLOR)
        h, w = src.shape[:2]
        size = (40, h * 40 // w) if h > w else (w * 40 // h, 40)
        np.testing.assert_array_equal(pixels, cv2.cvtColor(cv2.resize(src, size),
                                                           cv2.COLOR_BGR2RGB))


def test_writer_over_a_plain_sequence_red_stays_red(tmp_path, real_reader):
    items = [(solid(c), i) for i, c in enumerate(COLOURS)]
    rec = str(tmp_path / "c.rec")
    with RecordFileWriter(rec, encoding=".png") as w:
        summary = w.write_dataset(items, num_workers=2)
        w.write(solid((7, 8, 9)), [1.5, 2.5])
    assert (summary.written, summary.failed) == (4, 0)
    records = real_reader(rec)
    assert [r[0] for r in records[:4]] == [0.0, 1.0, 2.0, 3.0]
    np.testing.assert_array_equal(records[4][0], [1.5, 2.5])
    for (_, _, pixels), colour in zip(records, COLOURS + [(7, 8, 9)]):
        np.testing.assert_array_equal(pixels[12, 16], colour)
    ours = RecordDataset(rec)
    np.testing.assert_array_equal(ours[0][0], solid(COLOURS[0]))


def test_float_tensors_with_npy_through_im2rec(tmp_path, image_folder):
    """A plain-function transform that makes CHW float tensors, stored with .npy: what
    Gluon's ToTensor + Normalize do, without MXNet."""
    root, lst, rows = image_folder

    def to_tensor(image):
        return ((image.astype(np.float32) / 255 - 0.5) / 0.25).transpose(2, 0, 1)

    rec = rp.im2rec(lst, to_tensor, {"root": root, "resize": 24, "encoding": ".npy"},
                    str(tmp_path / "t"))
    ds = RecordDataset(rec)
    tensor, label = ds[0]
    assert tensor.dtype == np.float32 and tensor.shape[0] == 3 and label == rows[0][1]
    assert -2.1 <= tensor.min() and tensor.max() <= 2.1


@pytest.mark.nomx
def test_gluon_pieces_say_how_to_install_mxnet_when_used(tmp_path):
    from mxnet_recpack import ArrayDataset, ImageListDataset  # importing them is fine
    # the advice fits the Python: MXNet 1.9.1 installs on 3.8-3.11 only
    advice = (r"pip install 'mxnet_recpack\[mxnet\]'.*keep the MXNet build you have"
              if sys.version_info < (3, 12) else
              r"MXNet has no release for Python 3\.\d+ .*python3\.11 -m venv env; env/bin/pip "
              r"install 'mxnet_recpack\[mxnet\]'")
    for cls in (ImageListDataset, ArrayDataset):
        with pytest.raises(rp.MissingDependencyError, match=r"needs MXNet \(Gluon\).*" + advice):
            cls(str(tmp_path / "x.lst"))
    assert issubclass(rp.MissingDependencyError, ImportError)


@pytest.mark.nomx
def test_this_environment_is_numpy_2_without_mxnet():
    """The environment without MXNet is what the issue promises: numpy 2, no mxnet module."""
    assert int(np.__version__.split(".")[0]) >= 2
    with pytest.raises(ImportError):
        import mxnet  # noqa: F401


def test_write_arrays_matches_what_the_gluon_path_would_store(tmp_path, photos):
    """The numpy items of a plain sequence and the positions as keys: 0, 1, 2..."""
    rec = write_arrays(tmp_path / "a.rec", [p[:30, :30] for _, p in photos[:3]], [5, 6, 7])
    assert list(RecordDataset(rec).keys) == [0, 1, 2]
    assert [label for _, label in RecordDataset(rec)] == [5.0, 6.0, 7.0]


def test_list_file_lines_are_checked_without_mxnet(tmp_path):
    write_lst(tmp_path / "data.lst", [(0, 0, "a.jpg")])
    (tmp_path / "data.lst").write_text("0\t0\ta.jpg\n0\t1\tb.jpg\n")
    code, _, err = run_all([recpack_cmd("im2rec", tmp_path / "data", tmp_path)])[0]
    assert code == 1 and "data.lst:2: index 0 already used on line 1" in err
