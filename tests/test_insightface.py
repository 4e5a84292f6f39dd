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
from helpers import digest, idx_of, recpack_cmd, write_lst
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


def check_face_file(rec, identities, empty=0, id2=1):
    """What InsightFace's readers rely on: every image readable, each identity's range holding
    exactly its images (``empty`` ranges holding none), verify passing without notes on the
    layout's labels, and the header record's ``id2`` (1 as RecBuilder writes it)."""
    faces = mx_face_dataset(rec)
    ranges = face_image_iter_ranges(rec)
    assert len(ranges) == identities
    owners = []
    for a, b in ranges.values():
        held = {faces[k - 1][0] for k in range(a, b)}
        assert len(held) <= 1
        owners.extend(held)
    assert len(owners) == len(set(owners)) == identities - empty
    assert sum(b - a for a, b in ranges.values()) == len(faces)
    result = rp.verify(str(rec))
    assert result.problems == [], result.problems
    assert not [n for n in result.notes if "label" in n or "more than one" in n], result.notes
    imgrec = mx.recordio.MXIndexedRecordIO(idx_of(rec), str(rec), "r")
    assert mx.recordio.unpack(imgrec.read_idx(0))[0].id2 == id2
    imgrec.close()
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
    parts = [mx_face_dataset(tmp_path / name) for name in ("s_train.rec", "s_val.rec")]
    train, val = (check_face_file(tmp_path / name, len({label for label, _ in part}))
                  for name, part in zip(("s_train.rec", "s_val.rec"), parts))
    assert len(train) + len(val) == 10
    rp.filter_records(rec, tmp_path / "f.rec", labels=[0, 3])
    kept = check_face_file(tmp_path / "f.rec", 2)  # identities 1, 2 have no images: no record
    assert [label for label, _ in kept] == [0, 0, 0, 3, 3]
    rp.filter_records(rec, tmp_path / "e.rec", labels=[0, 3], keep_empty_identities=True)
    empties = check_face_file(tmp_path / "e.rec", 4, empty=2)  # record N+1+j: identity j
    assert [label for label, _ in empties] == [label for label, _ in kept]
    assert list(face_image_iter_ranges(tmp_path / "e.rec").values()) == [(1, 4), (4, 4),
                                                                          (4, 4), (4, 6)]
    identity = [0, 0, 0, 1, 2, 2, 2, 2, 3, 3]  # of keys 1..10
    (tmp_path / "new.lst").write_text("".join("%d\t%d\tx\n" % (k + 1, 3 - i)
                                              for k, i in enumerate(identity)))
    rp.relabel(rec, tmp_path / "r.rec", list_file=tmp_path / "new.lst")
    relabelled = check_face_file(tmp_path / "r.rec", 4)
    assert [label for label, _ in relabelled] == [0, 0, 1, 1, 1, 1, 2, 3, 3, 3]
    rp.merge(tmp_path / "m.rec", [rec, tmp_path / "f.rec"], identities="separate")
    merged = check_face_file(tmp_path / "m.rec", 6)
    assert sorted({label for label, _ in merged}) == [0, 1, 2, 3, 4, 7]
    with pytest.raises(OptionError, match="identities"):
        rp.merge(tmp_path / "x.rec", [rec, tmp_path / "f.rec"])
    with pytest.raises(OptionError, match="InsightFace's layout"):
        rp.shuffle(rec, tmp_path / "x.rec")
    with pytest.raises(OptionError, match="InsightFace's layout"):  # parts would lose it
        rp.rewrite(rec, tmp_path / "x.rec", resize=16, nsplit=2)
    rp.rewrite(rec, tmp_path / "w.rec", resize=16)
    assert len(check_face_file(tmp_path / "w.rec", 4, id2=0)) == 10  # records kept as they are
    assert not os.path.exists(tmp_path / "x.rec")
    rp.filter_records(rec, tmp_path / "plain.rec", drop_label_only=True)
    it = mx.io.ImageRecordIter(path_imgrec=str(tmp_path / "plain.rec"), data_shape=(3, 24, 24),
                               batch_size=10, label_width=2)
    assert sum(10 - b.pad for b in it) == 10  # every record an image now
    assert digest(rec, idx_of(rec)) == before


def _people(root, sizes):
    """A folder per identity of JPEG files: ``sizes`` ``{name: [(h, w), ...]}``."""
    for n, (person, shapes) in enumerate(sorted(sizes.items())):
        (root / person).mkdir(parents=True)
        for i, (h, w) in enumerate(shapes):
            noise = np.random.RandomState(100 * n + i).randint(0, 255, (h, w, 3))
            cv2.imwrite(str(root / person / ("%d.jpg" % i)), noise.astype(np.uint8))
    return root


def test_the_layout_is_the_one_recbuilder_writes(tmp_path):
    """arcface_mxnet's RecBuilder (recognition/arcface_mxnet/common/rec_builder.py): images
    from key 1 (IRHeader(0, label, key, 0)), one identity record per identity it was given
    (IRHeader(0, [first, end], key, 0)), then the header record IRHeader(0, [first identity
    key, end], 0, 1) -- id2 1 -- and 'max label + 1,H,W' in property. The same records
    written with MXNet's recordio must be the bytes of `im2rec --insightface`."""
    root = _people(tmp_path / "people", {"a": [(30, 30)] * 2, "b": [(30, 30)] * 3,
                                         "c": [(30, 30)]})
    rows = [(k, label, "%s/%d.jpg" % (person, i)) for k, (label, person, i) in enumerate(
        [(0, "a", 0), (0, "a", 1), (2, "b", 0), (2, "b", 1), (2, "b", 2), (3, "c", 0)])]
    (tmp_path / "out").mkdir()
    write_lst(tmp_path / "out" / "train.lst", rows)  # identities 0, 2, 3: none has identity 1
    done = subprocess.run(recpack_cmd("im2rec", "--insightface", "--pass-through",
                                      tmp_path / "out" / "train", root),
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    want = tmp_path / "want.rec"
    w = mx.recordio.MXIndexedRecordIO(idx_of(want), str(want), "w")
    key, ranges = 1, []
    for label in (0, 2, 3):  # RecBuilder.add(label, images), one call per identity
        start = key
        for _, lab, rel in rows:
            if lab == label:
                w.write_idx(key, mx.recordio.pack(mx.recordio.IRHeader(0, label, key, 0),
                                                  (root / rel).read_bytes()))
                key += 1
        ranges.append([start, key])
    first = key
    for a, b in ranges:  # RecBuilder.close()
        w.write_idx(key, mx.recordio.pack(mx.recordio.IRHeader(0, [a, b], key, 0), b""))
        key += 1
    w.write_idx(0, mx.recordio.pack(mx.recordio.IRHeader(0, (first, key), 0, 1), b""))
    w.close()
    assert digest(tmp_path / "out" / "train.rec") == digest(want)
    assert digest(tmp_path / "out" / "train.idx") == digest(idx_of(want))
    assert (tmp_path / "out" / "property").read_text() == "4,30,30\n"
    check_face_file(tmp_path / "out" / "train.rec", 3)
    done = subprocess.run(recpack_cmd("im2rec", "--insightface", "--pass-through",
                                      "--keep-empty-identities", tmp_path / "out" / "train",
                                      root), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert check_face_file(tmp_path / "out" / "train.rec", 4, empty=1)
    assert face_image_iter_ranges(tmp_path / "out" / "train.rec")[8] == (3, 3)  # identity 1


def test_property_gives_the_size_all_images_have_or_is_not_written(tmp_path, caplog):
    root = _people(tmp_path / "people", {"a": [(30, 30), (30, 30)], "b": [(30, 30), (40, 24)]})
    (tmp_path / "mixed").mkdir()
    rp.make_list(str(root), str(tmp_path / "mixed" / "train"), recursive=True)
    with caplog.at_level("WARNING"):
        rp.im2rec(str(tmp_path / "mixed" / "train.lst"), None,
                  {"root": str(root), "insightface": True, "pass_through": True})
    assert not (tmp_path / "mixed" / "property").exists()  # not the first image's 30 x 30
    assert "no InsightFace 'property' file written: the images are not all one size (30x30 " \
           "at key 1, 24x40 at key 4)" in caplog.text and "rewrite" in caplog.text
    rec = str(tmp_path / "mixed" / "train.rec")
    check_face_file(rec, 2)
    # the operations on a face file write one beside what they write, in a folder of its own
    (tmp_path / "parts").mkdir()
    rp.filter_records(rec, tmp_path / "parts" / "a.rec", drop_keys=[4])
    assert (tmp_path / "parts" / "property").read_text() == "2,30,30\n"
    rp.filter_records(rec, tmp_path / "parts" / "b.rec", labels=[1])  # sizes differ again
    assert (tmp_path / "parts" / "property").read_text() == "2,30,30\n"  # left as it was
    (tmp_path / "small").mkdir()
    rp.rewrite(rec, tmp_path / "small" / "train.rec", resize=(16, 20))
    assert (tmp_path / "small" / "property").read_text() == "2,20,16\n"  # classes,H,W
    (tmp_path / "split").mkdir()
    rp.split(tmp_path / "small" / "train.rec", tmp_path / "split" / "s", nsplit=2)
    assert (tmp_path / "split" / "property").read_text() == "2,20,16\n"  # one for both parts
    caplog.clear()
    with caplog.at_level("WARNING"):  # beside its input: that folder's property is kept
        rp.filter_records(tmp_path / "small" / "train.rec", tmp_path / "small" / "b.rec",
                          labels=[0])
    assert (tmp_path / "small" / "property").read_text() == "2,20,16\n"
    assert "the folder also holds the input" in caplog.text and "'1,20,16'" in caplog.text


def test_relabel_mapping_maps_the_identity_of_face2rec2_labels(tmp_path):
    rec = face2rec2_file(tmp_path / "train.rec", [3, 1, 2])  # labels [identity, 1.0]
    (tmp_path / "out").mkdir()
    (tmp_path / "map.txt").write_text("0 2\n1 0\n2 1\n")
    done = subprocess.run(recpack_cmd("relabel", rec, tmp_path / "out" / "r.rec", "--mapping",
                                      tmp_path / "map.txt"), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    out = str(tmp_path / "out" / "r.rec")
    faces = check_face_file(out, 3)
    assert [label for label, _ in faces] == [0, 1, 1, 2, 2, 2]  # each identity together
    imgrec = mx.recordio.MXIndexedRecordIO(idx_of(out), out, "r")
    labels = [mx.recordio.unpack(imgrec.read_idx(k))[0].label.tolist() for k in range(1, 7)]
    assert labels == [[0.0, 1.0], [1.0, 1.0], [1.0, 1.0], [2.0, 1.0], [2.0, 1.0], [2.0, 1.0]]
    imgrec.close()  # the identity mapped, the aligned flag kept
    assert (tmp_path / "out" / "property").read_text() == "3,24,24\n"
    rp.relabel(rec, tmp_path / "out" / "v.rec", mapping={0: [5, 0], 1: 4, 2: 4})
    faces = check_face_file(tmp_path / "out" / "v.rec", 2)  # several values: the whole label
    assert [label for label, _ in faces] == [4, 4, 4, 5, 5, 5]
    with pytest.raises(OptionError, match=r"gives no label for 1 record\(s\) \(the labels 2\)"):
        rp.relabel(rec, tmp_path / "out" / "x.rec", mapping={0: 1, 1: 0})


def test_the_reader_reads_what_mx_face_dataset_reads_exif_photos_too(tmp_path, photos):
    """MXFaceDataset decodes with mx.image.imdecode, which ignores the EXIF orientation of
    JPEGs that begin with a JFIF segment and applies it otherwise: insightface=True does the
    same, wherever the photos came from."""
    from helpers import exif_jpeg
    shots = [exif_jpeg(cv2.resize(photos[k][1], (48, 32)), o, layout)
             for k, (o, layout) in enumerate([(6, "camera"), (6, "jfif"), (8, "jfif"),
                                              (3, "camera"), (1, "jfif")])]
    rec = str(tmp_path / "faces.rec")
    w = mx.recordio.MXIndexedRecordIO(idx_of(rec), rec, "w")
    for key, shot in enumerate(shots, 1):  # face2rec2.py stores aligned files as they are
        w.write_idx(key, mx.recordio.pack(mx.recordio.IRHeader(0, [key % 2, 1.0], key, 0), shot))
    w.write_idx(6, mx.recordio.pack(mx.recordio.IRHeader(0, [1, 6], 6, 0), b""))
    w.write_idx(0, mx.recordio.pack(mx.recordio.IRHeader(0, [6, 7], 0, 0), b""))
    w.close()
    theirs = mx_face_dataset(rec)
    ours = rp.RecordDataset(rec, insightface=True)
    assert len(ours) == len(theirs) == 5
    for (label, pixels), (image, our_label) in zip(theirs, ours):
        assert our_label == label and image.shape == pixels.shape
        assert np.abs(image.astype(int) - pixels).mean() < 1
    assert ours.exif == "mxnet"
    as_iter = rp.RecordDataset(rec, insightface=True, exif=True)  # as ImageRecordIter, DALI
    assert [as_iter[i][0].shape for i in range(5)] == [(48, 32, 3), (48, 32, 3), (48, 32, 3),
                                                       (32, 48, 3), (32, 48, 3)]
    assert [ours[i][0].shape for i in range(5)] == [(48, 32, 3), (32, 48, 3), (32, 48, 3),
                                                    (32, 48, 3), (32, 48, 3)]


def _insightface_module(relative):
    """A module of InsightFace's installed package, loaded from its file as it is (the
    package's ``__init__`` imports onnxruntime, which this environment's numpy cannot run)."""
    import importlib.util
    package = importlib.util.find_spec("insightface")
    path = os.path.join(os.path.dirname(package.origin), relative)
    spec = importlib.util.spec_from_file_location("insightface_" + relative[:-3].replace(
        "/", "_"), path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.insightface
def test_insightface_packages_rec_builder_writes_an_ordinary_file(tmp_path):
    """InsightFace's pip package has the newer RecBuilder (insightface.data.rec_builder):
    images from key 0, no header record, no identity records. Run as it is, its file is an
    ordinary one here, read as MXFaceDataset reads it (every key an image)."""
    RecBuilder = _insightface_module("data/rec_builder.py").RecBuilder
    shots = [jpg(k).tobytes() for k in range(5)]
    builder = RecBuilder(str(tmp_path / "ds"), image_size=(24, 24))
    builder.add(shots[:2])                      # identity 0
    builder.add(shots[2:3])                     # identity 1
    builder.add_image(shots[3], 2)
    builder.add_image(shots[4], 2)
    builder.close()
    builder.writer.close()  # its close() leaves the .idx to be flushed when it is collected
    rec = str(tmp_path / "ds" / "train.rec")
    theirs = mx_face_dataset(rec)
    ours = rp.RecordDataset(rec)
    assert list(ours.keys) == [0, 1, 2, 3, 4]
    assert [ours[i][1] for i in range(5)] == [label for label, _ in theirs] == [0, 0, 1, 2, 2]
    assert all(np.abs(ours[i][0].astype(int) - theirs[i][1]).mean() < 1 for i in range(5))
    result = rp.verify(rec)
    assert result.problems == [] and not any("InsightFace" in n for n in result.notes)
    assert rp.inspection.inspect_file(rec)["layout"] is None
    with pytest.raises(rp.RecordFormatError, match="insightface=True reads one face dataset"):
        rp.RecordDataset(rec, insightface=True)


def test_the_property_size_is_read_from_every_kind_of_image_header(tmp_path, photos):
    """The size check reads a few hundred bytes of each record at once; headers it cannot
    walk there (a frame header past a large segment, PNG) are read one by one: the same
    answer either way."""
    from helpers import exif_jpeg
    from mxnet_recpack.sources.face_property import image_size
    from mxnet_recpack.sources.records import RecordSet
    photo = cv2.resize(photos[1][1], (40, 30))
    bgr = cv2.cvtColor(photo, cv2.COLOR_RGB2BGR)
    plain = cv2.imencode(".jpg", bgr)[1].tobytes()
    comment = plain[:2] + b"\xff\xfe" + (3000).to_bytes(2, "big") + b"x" * 2998 + plain[2:]
    kinds = [plain, cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])[1].tobytes(),
             exif_jpeg(photo, 1), comment, cv2.imencode(".png", bgr)[1].tobytes()]
    rec = str(tmp_path / "k.rec")
    with rp.RecordFileWriter(rec) as w:
        for key, data in enumerate(kinds * 3):
            w.write(data, [float(key % 2), 1.0], key=key)
        w.write(cv2.imencode(".png", bgr[:20])[1].tobytes(), 0, key=99)
    records = RecordSet(rec)
    assert image_size(records, np.arange(15)) == ((30, 40), None)
    assert image_size(records, np.arange(16)) == (None, "the images are not all one size "
                                                        "(40x30 at key 0, 40x20 at key 99)")
    assert image_size(records, np.arange(0)) == (None, "there are no images")
    records.close()
