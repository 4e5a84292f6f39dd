"""InsightFace's face-dataset layout (MS1M, Glint360K: a header record at key 0, the images,
one identity record per identity), checked with readers that follow InsightFace's own code:
``arcface_torch``'s ``MXFaceDataset`` (images ``1 .. header.label[0]-1``, label ``label[0]``)
and ``arcface_mxnet``'s ``FaceImageIter`` (identity records ``[first, end)``), both on MXNet's
recordio module, as InsightFace runs them."""
import numbers
import os

import subprocess

import cv2
import mxnet as mx
import numpy as np
import pytest

import mxnet_recpack as rp
from helpers import digest, idx_of, recpack_cmd
from mxnet_recpack.errors import OptionError

pytestmark = pytest.mark.mxnet


def mx_face_dataset(rec):
    """``[(label, RGB image)]`` exactly as arcface_torch's MXFaceDataset reads them."""
    imgrec = mx.recordio.MXIndexedRecordIO(idx_of(rec), str(rec), "r")
    header, _ = mx.recordio.unpack(imgrec.read_idx(0))
    if header.flag > 0:
        imgidx = np.array(range(1, int(header.label[0])))
    else:
        imgidx = np.array(list(imgrec.keys))
    out = []
    for idx in imgidx:
        header, img = mx.recordio.unpack(imgrec.read_idx(int(idx)))
        label = header.label
        if not isinstance(label, numbers.Number):
            label = label[0]
        out.append((int(label), mx.image.imdecode(img).asnumpy()))
    imgrec.close()
    return out


def face_image_iter_ranges(rec):
    """``{identity key: (first, end)}`` as arcface_mxnet's FaceImageIter walks them."""
    imgrec = mx.recordio.MXIndexedRecordIO(idx_of(rec), str(rec), "r")
    header, _ = mx.recordio.unpack(imgrec.read_idx(0))
    ranges = {}
    for identity in range(int(header.label[0]), int(header.label[1])):
        h, _ = mx.recordio.unpack(imgrec.read_idx(identity))
        ranges[identity] = (int(h.label[0]), int(h.label[1]))
    imgrec.close()
    return ranges


def jpg(seed, size=24):
    rng = np.random.RandomState(seed)
    return cv2.imencode(".jpg", rng.randint(0, 255, (size, size, 3)).astype(np.uint8))[1]


def face2rec2_file(path, counts):
    """A face file written the way face2rec2.py does: images from key 1 with label
    [identity, aligned], identity records [first, end), then the header record at key 0."""
    rec = mx.recordio.MXIndexedRecordIO(idx_of(path), str(path), "w")
    key, ranges = 1, []
    for identity, n in enumerate(counts):
        start = key
        for _ in range(n):
            header = mx.recordio.IRHeader(0, [float(identity), 1.0], key, 0)
            rec.write_idx(key, mx.recordio.pack(header, jpg(key).tobytes()))
            key += 1
        ranges.append((start, key))
    first = key
    for a, b in ranges:
        rec.write_idx(key, mx.recordio.pack(mx.recordio.IRHeader(0, [a, b], key, 0), b""))
        key += 1
    rec.write_idx(0, mx.recordio.pack(mx.recordio.IRHeader(0, [first, key], 0, 0), b""))
    rec.close()
    return str(path)


def check_face_file(rec, identities):
    """What InsightFace's readers rely on: every image readable, each identity's range holding
    exactly its images, and verify passing."""
    faces = mx_face_dataset(rec)
    ranges = face_image_iter_ranges(rec)
    assert len(ranges) == identities
    first = min(ranges)
    for identity_key, (a, b) in ranges.items():
        assert {faces[k - 1][0] for k in range(a, b)} <= {identity_key - first}
    assert sum(b - a for a, b in ranges.values()) == len(faces)
    result = rp.verify(str(rec))
    assert result.problems == [], result.problems
    return faces


def test_verify_inspect_extract_and_the_reader_on_a_face2rec2_file(tmp_path):
    rec = face2rec2_file(tmp_path / "train.rec", [3, 1, 4])
    result = rp.verify(rec)
    assert result.problems == [] and (result.images, result.label_only) == (8, 4)
    assert any("InsightFace layout: 8 images, 3 identities" in n for n in result.notes)
    info = rp.inspection.inspect_file(rec)
    face = info["layout"]["insightface"]
    assert (face["images"], face["identities"]) == (8, 3)
    assert face["images_per_identity"] == {"min": 1, "median": 3.0, "max": 4}
    assert info["label_only"]["first"][0] == {"key": 0, "flag": 2, "label": [9.0, 12.0]}
    lst = rp.inspection.extract(rec, tmp_path / "out")
    assert len(open(lst).read().splitlines()) == 8
    sidecar = (tmp_path / "out" / "train.label_only.tsv").read_text().splitlines()
    assert sidecar[-1] == "0\t2\t9.000000\t12.000000" and len(sidecar) == 4
    ds = rp.RecordDataset(rec, insightface=True)
    assert [ds[i][1] for i in range(len(ds))] == [f[0] for f in mx_face_dataset(rec)]
    out = subprocess.run(recpack_cmd("inspect", rec), capture_output=True, text=True)
    assert "InsightFace layout: 8 images, 3 identities" in out.stdout


def test_verify_catches_broken_ranges_and_missing_images(tmp_path):
    rec = face2rec2_file(tmp_path / "t.rec", [2, 2])
    w = mx.recordio.MXIndexedRecordIO(idx_of(tmp_path / "b.rec"), str(tmp_path / "b.rec"), "w")
    r = mx.recordio.MXIndexedRecordIO(idx_of(rec), rec, "r")
    for key in r.keys:
        payload = r.read_idx(key)
        if key == 6:  # the second identity claims an image of the first
            payload = mx.recordio.pack(mx.recordio.IRHeader(0, [2, 5], 6, 0), b"")
        if key != 4:  # and an image goes missing
            w.write_idx(key, payload)
    w.close()
    problems = [p["message"] for p in rp.verify(str(tmp_path / "b.rec")).problems]
    assert any("image key 4" in m and "missing" in m for m in problems)
    assert any("overlap" in m for m in problems)


def test_im2rec_writes_the_layout_from_a_folder_per_identity(tmp_path):
    root = tmp_path / "people"
    for person, n in (("alice", 3), ("bob", 2), ("carol", 4)):
        (root / person).mkdir(parents=True)
        for i in range(n):
            cv2.imwrite(str(root / person / ("%d.jpg" % i)),
                        np.full((60, 50, 3), 40 * i + len(person), np.uint8))
    for args in (("im2rec", "--list", "--recursive", tmp_path / "train", root),
                 ("im2rec", "--insightface", "--resize", "32", "--center-crop",
                  "--num-thread", "2", tmp_path / "train", root)):
        done = subprocess.run(recpack_cmd(*args), capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    rec = str(tmp_path / "train.rec")
    faces = check_face_file(rec, 3)
    assert [label for label, _ in faces] == [0, 0, 0, 1, 1, 2, 2, 2, 2]  # alice, bob, carol
    assert all(img.shape == (32, 32, 3) for _, img in faces)
    assert (tmp_path / "property").read_text() == "3,32,32\n"


def test_operations_rebuild_the_layout(tmp_path):
    rec = face2rec2_file(tmp_path / "train.rec", [3, 1, 4, 2])
    before = digest(rec, idx_of(rec))
    rp.split(rec, tmp_path / "s", train_ratio=0.5)
    train, val = check_face_file(tmp_path / "s_train.rec", 4), \
        check_face_file(tmp_path / "s_val.rec", 4)
    assert len(train) + len(val) == 10
    rp.filter_records(rec, tmp_path / "f.rec", labels=[0, 3])
    kept = check_face_file(tmp_path / "f.rec", 4)  # identities 1, 2: empty ranges
    assert [label for label, _ in kept] == [0, 0, 0, 3, 3]
    identity = [0, 0, 0, 1, 2, 2, 2, 2, 3, 3]  # of keys 1..10
    (tmp_path / "new.lst").write_text("".join("%d\t%d\tx\n" % (k + 1, 3 - i)
                                              for k, i in enumerate(identity)))
    rp.relabel(rec, tmp_path / "r.rec", list_file=tmp_path / "new.lst")
    relabelled = check_face_file(tmp_path / "r.rec", 4)
    assert [label for label, _ in relabelled] == [0, 0, 1, 1, 1, 1, 2, 3, 3, 3]
    rp.merge(tmp_path / "m.rec", [rec, tmp_path / "f.rec"], identities="separate")
    merged = check_face_file(tmp_path / "m.rec", 8)
    assert sorted({label for label, _ in merged}) == [0, 1, 2, 3, 4, 7]
    with pytest.raises(OptionError, match="identities"):
        rp.merge(tmp_path / "x.rec", [rec, tmp_path / "f.rec"])
    with pytest.raises(OptionError, match="InsightFace's layout"):
        rp.shuffle(rec, tmp_path / "x.rec")
    with pytest.raises(OptionError, match="InsightFace's layout"):  # parts would lose it
        rp.rewrite(rec, tmp_path / "x.rec", resize=16, nsplit=2)
    rp.rewrite(rec, tmp_path / "w.rec", resize=16)
    assert len(check_face_file(tmp_path / "w.rec", 4)) == 10  # keys kept: the layout holds
    assert not os.path.exists(tmp_path / "x.rec")
    rp.filter_records(rec, tmp_path / "plain.rec", drop_label_only=True)
    it = mx.io.ImageRecordIter(path_imgrec=str(tmp_path / "plain.rec"), data_shape=(3, 24, 24),
                               batch_size=10, label_width=2)
    assert sum(10 - b.pad for b in it) == 10  # every record an image now
    assert digest(rec, idx_of(rec)) == before
