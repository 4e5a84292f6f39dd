"""One option table: every front door takes its defaults, checks and help from it; the public
API and the command line keep their names; ``resize`` also takes an exact (width, height)."""
import inspect
import logging
import subprocess

import cv2
import numpy as np
import pytest

import mxnet_recpack as rp
from helpers import recpack_cmd, write_lst
from mxnet_recpack import ImageList, RecordDataset, RecordFileWriter
from mxnet_recpack.cli import build_parser
from mxnet_recpack.images import opencv
from mxnet_recpack.options import OPTIONS
from mxnet_recpack.pack import DATASET_PARAMS, IM2REC_OPTIONS

#: The public names of mxnet_recpack 0.1: none may go away.
PUBLIC_0_1 = ["__version__", "RecordFileWriter", "WriteSummary", "ImageListDataset",
              "ArrayDataset", "RecordFile", "RecordReader", "RecordHeader", "encode_record",
              "pack_record", "unpack_record", "read_index", "to_recordio", "im2rec",
              "make_list", "RecpackError", "RecordFormatError", "IndexFormatError",
              "ListFormatError", "ImageEncodeError", "OptionError", "TooManyFailuresError",
              "OutputExistsError", "BadImageError"]


def test_the_public_names_stay_and_every_listed_name_resolves():
    assert set(PUBLIC_0_1) <= set(rp.__all__)
    for name in rp.__all__:
        assert getattr(rp, name) is not None, name
    for cls in (rp.WorkerError, rp.MissingDependencyError, rp.DuplicateKeyError):
        assert issubclass(cls, rp.RecpackError)


def _defaults(fn):
    return {name: p.default for name, p in inspect.signature(fn).parameters.items()
            if p.default is not inspect.Parameter.empty}


def test_every_signature_takes_its_defaults_from_the_table():
    checked = 0
    for fn in (RecordFileWriter.__init__, RecordFileWriter.write_dataset, ImageList.__init__,
               rp.to_recordio, rp.make_list):
        for name, default in _defaults(fn).items():
            if name in OPTIONS and not (fn is ImageList.__init__ and name == "pack_label"):
                assert default == OPTIONS[name].default, (fn.__qualname__, name)
                checked += 1
    assert checked >= 25
    # ImageList stores every label of a line by default; im2rec.py (and im2rec) only the first
    assert _defaults(ImageList.__init__)["pack_label"] is True
    assert DATASET_PARAMS["pack_label"][0] is False
    assert {k: v[0] for k, v in DATASET_PARAMS.items()} == {
        k: OPTIONS[k].default for k in IM2REC_OPTIONS}


def test_the_command_line_flags_come_from_the_table():
    parser = build_parser()
    sub = parser._subparsers._group_actions[0].choices["im2rec"]
    flags = {a.dest: a for a in sub._actions}
    for name, option in OPTIONS.items():
        if option.flag is None or name not in flags:
            continue
        action = flags[name]
        assert option.flag in action.option_strings, name
        assert action.help == option.cli.get("help", option.help), name
    args = sub.parse_args(["p", "r"])
    assert args.quality is OPTIONS["quality"].default is None  # the format's own default
    assert args.reduced_decode == "auto" and args.overwrite is True and args.shuffle is True
    assert len([n for n in OPTIONS if OPTIONS[n].flag and n in flags]) >= 25


@pytest.mark.parametrize("call, message", [
    (lambda t: RecordFileWriter(str(t / "a.rec")).write_dataset([], num_workers=True),
     r"num_workers = True is not valid; expected an integer >= 0"),
    (lambda t: RecordFileWriter(str(t / "a.rec"), quality=True),
     r"quality = True is not valid"),
    (lambda t: RecordFileWriter(str(t / "a.rec"), max_failures=2.5),
     r"max_failures = 2.5 is not valid; expected None or inf \(no limit\), a count >= 1"),
    (lambda t: ImageList(str(t / "x.lst"), resize=(64, 0)),
     r"resize = \(64, 0\) is not valid; expected an integer >= 0 \(the shorter edge\) or a "
     r"\(width, height\) pair"),
    (lambda t: ImageList(str(t / "x.lst"), color=True), r"color = True is not valid"),
    (lambda t: rp.im2rec(str(t / "x.lst"), None, {"num_thread": True}),
     r"dataset_params\['num_thread'\] = True is not valid; expected an integer >= 1"),
    (lambda t: rp.im2rec(str(t / "x.lst"), None, {"nsplit": 2, "part": 2}),
     r"part = 2 is not valid; expected an integer in \[0, nsplit\) = \[0, 2\)"),
    (lambda t: rp.make_list(str(t), str(t / "p"), chunks=True), r"chunks = True is not valid"),
])
def test_a_bool_is_not_a_number_and_every_refusal_names_the_option(tmp_path, call, message):
    (tmp_path / "x.lst").write_text("0\t0\ta.jpg\n")
    with pytest.raises(rp.OptionError, match=message):
        call(tmp_path)


def test_resize_to_an_exact_width_and_height_after_center_crop(tmp_path, image_folder):
    root, lst, rows = image_folder
    exact = rp.im2rec(lst, None, {"root": root, "resize": (64, 48), "encoding": ".png"},
                      str(tmp_path / "exact"))
    cropped = rp.im2rec(lst, None, {"root": root, "resize": [30, 20], "center_crop": True,
                                    "encoding": ".png"}, str(tmp_path / "crop"))
    for rec, size in ((exact, (48, 64)), (cropped, (20, 30))):
        images = [image for image, _ in RecordDataset(rec)]
        assert len(images) == len(rows) and {img.shape[:2] for img in images} == {size}
    src = cv2.imread("%s/%s" % (root, rows[0][2]))
    side = min(src.shape[:2])
    y, x = (src.shape[0] - side) // 2, (src.shape[1] - side) // 2
    expect = cv2.resize(src[y:y + side, x:x + side], (30, 20), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_array_equal(RecordDataset(cropped)[0][0], expect[:, :, ::-1])
    parser = build_parser()
    with pytest.raises(SystemExit):  # the CLI's --resize stays im2rec.py's integer
        parser.parse_args(["im2rec", "--resize", "64,48", "p", "r"])


def test_a_second_opencv_build_is_detected_with_the_fix(tmp_path, monkeypatch, caplog):
    for name in ("opencv_python_headless-4.11.0.86.dist-info", "opencv_python-4.10.0.84.dist-info",
                 "numpy-1.23.5.dist-info"):
        (tmp_path / name).mkdir()
    assert opencv.installed_builds(str(tmp_path)) == ["opencv-python", "opencv-python-headless"]
    monkeypatch.setattr(opencv, "_CV2", None)
    assert opencv.installed_builds(str(tmp_path), versions=True) == {"4.11.0.86", "4.10.0.84"}
    monkeypatch.setattr(opencv, "installed_builds", lambda site, versions=False: (
        {"4.10.0.84", "4.11.0.86"} if versions else ["opencv-contrib-python",
                                                      "opencv-python-headless"]))
    with caplog.at_level(logging.WARNING, logger="mxnet_recpack.images.opencv"):
        assert opencv.load() is cv2
    assert "several OpenCV builds are installed side by side (opencv-contrib-python, " \
           "opencv-python-headless)" in caplog.text
    assert "pip uninstall -y opencv-python opencv-contrib-python" in caplog.text
    caplog.clear()  # builds of one version (the other build installed last): no warning
    monkeypatch.setattr(opencv, "_CV2", None)
    monkeypatch.setattr(opencv, "installed_builds", lambda site, versions=False: (
        {"4.11.0.86"} if versions else ["opencv-contrib-python", "opencv-python-headless"]))
    with caplog.at_level(logging.WARNING, logger="mxnet_recpack.images.opencv"):
        assert opencv.load() is cv2
    assert "several OpenCV builds" not in caplog.text


def test_max_failures_inf_means_no_limit(tmp_path, image_folder):
    """``--max-failures inf`` (the flag is a float) and ``max_failures=float('inf')``: every bad
    image skipped and reported, as with no limit; a fraction of a count is refused."""
    root, lst, rows = image_folder
    write_lst(tmp_path / "d.lst", rows + [(900, 0, "gone.jpg"), (901, 0, "gone2.jpg")])
    result = subprocess.run(recpack_cmd("im2rec", "--max-failures", "inf", tmp_path / "d",
                                        root), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "skipped 2 bad image(s)" in result.stdout + result.stderr
    assert list(RecordDataset(str(tmp_path / "d.rec")).keys) == [k for k, _, _ in rows]
    rp.im2rec(str(tmp_path / "d.lst"), None, {"root": root, "max_failures": float("inf")},
              str(tmp_path / "e"))
    assert len(RecordDataset(str(tmp_path / "e.rec"))) == len(rows)
    for flag in ("2.5", "-inf", "nan"):
        result = subprocess.run(recpack_cmd("im2rec", "--max-failures=" + flag, tmp_path / "d",
                                            root), capture_output=True, text=True, timeout=120)
        assert result.returncode == 1 and "--max-failures = " in result.stderr and \
            "is not valid; expected None or inf (no limit)" in result.stderr, result.stderr
