"""Inputs are stored as the user gave them, or refused saying why: labels float32 cannot hold,
EXIF-rotated photos on every decode path, names a list cannot carry, detection labels that
break their layout, and a transform that fails on every item (user code, not bad data)."""
import json
import logging
import os

import cv2
import numpy as np
import pytest

import mxnet_recpack as rp
from helpers import exif_jpeg, read, recpack_cmd, run_all, write_lst
from mxnet_recpack import RecordDataset, RecordFileWriter


@pytest.mark.parametrize("label, message", [
    (16777217, r"integer label 16777217 cannot be stored exactly: float32 rounds it to "
               r"16777216"),
    (float("inf"), r"label inf is not a finite float32"),
    ([1, 1e40], r"label 1e\+40 is not a finite float32"),
    ([0, float("nan")], r"label nan is not a finite float32"),
])
def test_labels_float32_cannot_hold_are_refused_in_the_api(tmp_path, label, message):
    with RecordFileWriter(str(tmp_path / "l.rec")) as w:
        with pytest.raises(rp.ImageEncodeError, match=message + r".*class ids below 2\*\*24"):
            w.write(np.zeros((8, 8, 3), np.uint8), label)
        w.write(np.zeros((8, 8, 3), np.uint8), 16777216)  # the largest exact one is fine
    assert RecordDataset(str(tmp_path / "l.rec"))[0][1] == 16777216.0


@pytest.mark.parametrize("text, message", [
    ("16777217.000000", r"d\.lst:2: integer label 16777217 cannot be stored exactly"),
    ("1e40", r"d\.lst:2: label 1e\+40 is not a finite float32"),
    ("inf", r"d\.lst:2: label inf is not a finite float32"),
])
def test_labels_float32_cannot_hold_are_refused_in_lists(tmp_path, text, message):
    (tmp_path / "d.lst").write_text("0\t1\ta.jpg\n1\t%s\tb.jpg\n" % text)
    with pytest.raises(rp.ListFormatError, match=message + r".*im2rec\.py would round it"):
        rp.im2rec(str(tmp_path / "d.lst"), None, {"root": str(tmp_path)})
    code, _, err = run_all([recpack_cmd("im2rec", tmp_path / "d", tmp_path)])[0]
    assert code == 1 and "d.lst:2:" in err
    assert sorted(os.listdir(tmp_path)) == ["d.lst"]


@pytest.mark.parametrize("orientation", [6, 8])
def test_exif_rotated_photos_keep_their_geometry_on_every_decode_path(tmp_path, photos,
                                                                      orientation):
    photo = cv2.resize(photos[0][1], (1200, 800))  # stored 1200 x 800, shown 800 x 1200
    (tmp_path / "r.jpg").write_bytes(exif_jpeg(photo, orientation))
    shown = cv2.imread(str(tmp_path / "r.jpg"))  # what im2rec.py decodes
    assert shown.shape[:2] == (1200, 800)
    write_lst(tmp_path / "d.lst", [(0, 0, "r.jpg")])
    shapes = {}
    for name, params in (("default", {}), ("area", {"inter_method": 3}),
                         ("reduced", {"reduced_decode": True}),
                         ("area-crop", {"inter_method": 3, "center_crop": True})):
        rec = rp.im2rec(str(tmp_path / "d.lst"), None, dict(params, root=str(tmp_path),
                                                             resize=100), str(tmp_path / name))
        shapes[name] = RecordDataset(rec)[0][0].shape
    assert shapes["default"] == shapes["area"] == shapes["reduced"] == (150, 100, 3)
    assert shapes["area-crop"] == (100, 100, 3)


def test_list_leaves_out_names_a_list_cannot_carry_and_packs_the_rest(tmp_path, caplog):
    ok, jpg = cv2.imencode(".jpg", np.full((8, 8, 3), 90, np.uint8))
    root = tmp_path / "img"
    root.mkdir()
    for name in (b"good.jpg", b" leading.jpg", b"tab\there.jpg", b"caf\xe9.jpg"):
        with open(os.path.join(os.fsencode(root), name), "wb") as f:
            f.write(jpg.tobytes())
    with caplog.at_level(logging.WARNING, logger="mxnet_recpack.sources.discover"):
        lists = rp.make_list(str(root), str(tmp_path / "d"))
    assert "3 image(s) left out of the list" in caplog.text and "rename them" in caplog.text
    assert [line.split("\t")[-1] for line in read(lists[0]).decode().splitlines()] == \
        ["good.jpg"]
    code, out, err = run_all([recpack_cmd("im2rec", tmp_path / "d", root)])[0]
    assert code == 0 and "1 records" in out, err


def test_detection_labels_are_checked_when_asked(tmp_path):
    rec = str(tmp_path / "d.rec")
    good = [2, 5, 0, .1, .2, .5, .6, 1, .3, .3, .9, .8]
    bad = {"not 5-wide objects": [2, 5, 0, .1, .2, .5], "outside [0, 1]": [2, 5, 0, .1, .2, 1.5,
                                                                             .6],
           "header too short": [1, 5, 0, .1, .2, .5, .6]}
    with RecordFileWriter(rec, detection_labels=True) as w:
        w.write(np.zeros((8, 8, 3), np.uint8), good)
        for label in bad.values():
            with pytest.raises(rp.ImageEncodeError, match="detection label"):
                w.write(np.zeros((8, 8, 3), np.uint8), label)
        summary = w.write_dataset([(np.zeros((8, 8, 3), np.uint8), label)
                                   for label in [good] + list(bad.values())])
    assert (summary.written, summary.failed) == (1, 3)
    info = rp.inspection.inspect_file(rec)
    assert info["readers"] == {"label_width": 12, "label_pad_width": 12, "note": None,
                               "label_only": None}


@pytest.mark.mxnet
def test_the_seed_example_stops_at_once_and_its_fix_packs(tmp_path, image_folder):
    """im2rec(lst, Compose([Normalize(0, 1)])) fails on every image with MXNet's own error:
    that is the transform, not bad data; with ToTensor first and .npy it packs, through
    im2rec as through to_recordio."""
    from mxnet.gluon.data.vision import transforms as T
    root, lst, rows = image_folder
    with pytest.raises(rp.TransformError, match=r"raised MXNetError on each of the first 8 "
                                                r"items.*Fix: Normalize works on a CHW float "
                                                r"tensor: put ToTensor\(\) before it"):
        rp.im2rec(lst, T.Compose([T.Normalize(0, 1)]), {"root": root}, str(tmp_path / "bad"))
    assert not os.path.exists(tmp_path / "bad.rec")
    fixed = T.Compose([T.ToTensor(), T.Normalize(0.5, 0.25)])
    rec = rp.im2rec(lst, fixed, {"root": root, "resize": 32, "encoding": ".npy"},
                    str(tmp_path / "good"))
    tensors = RecordDataset(rec)
    assert len(tensors) == len(rows) and tensors[0][0].dtype == np.float32
    assert tensors[0][0].shape[0] == 3
    ds = rp.ImageListDataset(lst, root=root, resize=32).transform_first(fixed)
    other = ds.to_recordio(str(tmp_path / "same.rec"), encoding=".npy")
    assert read(other) == read(rec)


def _closed_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_images_out_of_reach_stop_the_run_as_a_network_fault_not_broken_code(tmp_path):
    """Images that the S3 endpoint cannot serve (nothing listens there) fail with botocore's
    EndpointConnectionError, which is no OSError: by type, that is the storage out of reach, a
    network fault, neither bad data nor the transform's code failing. The run stops at once,
    saying so and naming the URL; the existing output is untouched and nothing is reported
    as a bad image."""
    write_lst(tmp_path / "u.lst", [(k, 0, "img%d.jpg" % k) for k in range(8)])
    options = {"key": "k", "secret": "s", "client_kwargs": {
        "endpoint_url": "http://127.0.0.1:%d" % _closed_port()},
        "config_kwargs": {"retries": {"max_attempts": 1}, "connect_timeout": 2}}
    with pytest.raises(rp.StorageUnreachableError, match=r"s3://bucket/images/img0\.jpg: "
                                                         r"reading it failed: the storage server "
                                                         r"could not be reached"):
        rp.im2rec(str(tmp_path / "u.lst"), None, {"root": "s3://bucket/images",
                                                  "storage_options": options})
    assert not os.path.exists(tmp_path / "u.failures.jsonl")
    assert not os.path.exists(tmp_path / "u.rec")


class _Unreadable(OSError):
    """An I/O error of a dataset's own storage layer, under a class name of its own."""


class _Items:
    def __init__(self, error):
        self.error = error

    def __len__(self):
        return 12

    def __getitem__(self, i):
        if i < 10:
            raise self.error("item %d: cannot be read" % i)
        return np.zeros((8, 8, 3), np.uint8), i


@pytest.mark.parametrize("error, stops", [(_Unreadable, False), (KeyError, True)])
def test_errors_are_told_apart_by_type_not_by_name(tmp_path, error, stops):
    """Any OSError (whatever its class is called) is bad input: skipped, the run goes on; the
    same other error on each of the first 8 items is the dataset's code: the run stops."""
    rec = str(tmp_path / "d.rec")
    if stops:
        with pytest.raises(rp.TransformError, match=r"raised KeyError on each of the first 8"):
            with RecordFileWriter(rec) as w:
                w.write_dataset(_Items(error))
        assert not os.path.exists(rec)
        return
    with RecordFileWriter(rec) as w:
        summary = w.write_dataset(_Items(error))
    assert summary.failed == 10 and list(RecordDataset(rec).keys) == [10, 11]
    kinds = {json.loads(line)["kind"] for line in open(tmp_path / "d.failures.jsonl")}
    assert kinds == {"data"}
