"""Datasets into .rec/.idx, read back by MXNet's own readers: counts, keys, labels, shapes,
colours."""
import os

import mxnet as mx
import numpy as np
import pytest
from mxnet.gluon.data import Dataset, SimpleDataset
from mxnet.gluon.data.vision import ImageRecordDataset, transforms

import mxnet_recpack as rp
from mxnet_recpack import ArrayDataset, ImageListDataset, RecordFileWriter

pytestmark = pytest.mark.mxnet  # read back with MXNet's own readers


def mx_records(rec):
    """Every record through MXIndexedRecordIO.read_idx: {key: (header, decoded RGB image)}."""
    r = mx.recordio.MXIndexedRecordIO(rec[:-4] + ".idx", rec, "r")
    out = {}
    for key in r.keys:
        header, img = mx.recordio.unpack_img(r.read_idx(key), iscolor=-1)
        if img is not None and img.ndim == 3:
            img = img[:, :, ::-1]  # OpenCV BGR -> RGB
        out[key] = (header, img)
    r.close()
    return out, list(r.keys)


def record_iter(rec, shape, batch_size, label_width=1):
    it = mx.io.ImageRecordIter(path_imgrec=rec, path_imgidx=rec[:-4] + ".idx", data_shape=shape,
                               batch_size=batch_size, label_width=label_width, shuffle=False,
                               round_batch=False)
    datas, labels = [], []
    for batch in it:
        n = batch_size - batch.pad
        datas.append(batch.data[0].asnumpy()[:n])
        labels.append(batch.label[0].asnumpy()[:n])
    return np.concatenate(datas), np.concatenate(labels)


def solid(rgb, h=24, w=32):
    img = np.zeros((h, w, 3), np.uint8)
    img[:] = rgb
    return img


COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (250, 200, 10)]


# ---- colour: what goes in RGB comes out RGB -----------------------------------------------------

@pytest.mark.parametrize("encoding", [".jpg", ".png"])
def test_red_stays_red_through_image_record_iter_and_dataset(tmp_path, encoding):
    rec = str(tmp_path / "c.rec")
    ds = ArrayDataset(np.stack([solid(c) for c in COLOURS]), np.arange(4))
    assert ds.to_recordio(rec, encoding=encoding) == rec
    data, labels = record_iter(rec, (3, 24, 32), batch_size=4)
    got = data[:, :, 12, 16]  # NCHW: centre pixel of each image
    np.testing.assert_allclose(got, np.array(COLOURS, np.float32), atol=3)
    np.testing.assert_array_equal(labels, np.arange(4))
    gluon = ImageRecordDataset(rec)
    for i, colour in enumerate(COLOURS):
        img, label = gluon[i]
        np.testing.assert_allclose(img.asnumpy()[12, 16], colour, atol=3)
        assert label == i


def test_gray_images_round_trip(tmp_path):
    rec = str(tmp_path / "g.rec")
    gray = np.tile(np.arange(32, dtype=np.uint8) * 8, (24, 1))
    with RecordFileWriter(rec, encoding=".png") as w:
        w.write(gray, 1)
        w.write(gray[:, :, None], 2)
    records, keys = mx_records(rec)
    assert keys == [0, 1]
    for key in keys:
        header, img = records[key]
        assert img.shape == (24, 32)
        np.testing.assert_array_equal(img, gray)


# ---- labels -----------------------------------------------------------------------------------

def test_vector_labels_are_stored_whole(tmp_path):
    rec = str(tmp_path / "v.rec")
    labels = np.array([[1, 2, 3], [4, 5, 6], [7, 8, 9]], np.float32)
    ArrayDataset(np.stack([solid(c) for c in COLOURS[:3]]), labels).to_recordio(rec)
    records, _ = mx_records(rec)
    for key, (header, _) in records.items():
        assert header.flag == 3
        np.testing.assert_array_equal(header.label, labels[key])
    _, it_labels = record_iter(rec, (3, 24, 32), batch_size=3, label_width=3)
    np.testing.assert_array_equal(it_labels, labels)
    _, gl = ImageRecordDataset(rec)[2]
    np.testing.assert_array_equal(gl, labels[2])


def test_detection_labels_read_by_image_det_record_iter(tmp_path):
    rec = str(tmp_path / "det.rec")
    # header_width 2, object_width 5, then (class, xmin, ymin, xmax, ymax) per object
    dets = [np.array([2, 5, 0, .1, .2, .5, .6, 1, .3, .3, .9, .8], np.float32),
            np.array([2, 5, 1, .0, .0, 1., 1.], np.float32)]
    with RecordFileWriter(rec) as w:
        for colour, label in zip(COLOURS, dets):
            w.write(solid(colour, 64, 64), label)
    it = mx.io.ImageDetRecordIter(path_imgrec=rec, path_imgidx=rec[:-4] + ".idx",
                                  data_shape=(3, 64, 64), batch_size=2, shuffle=False)
    label = it.next().label[0].asnumpy()
    # the iterator prefixes (channels, height, width, label length), then the label as stored,
    # padded with -1 to the longest one
    np.testing.assert_allclose(label[0], [3, 64, 64, 12] + list(dets[0]), atol=1e-6)
    np.testing.assert_allclose(label[1], [3, 64, 64, 7] + list(dets[1]) + [-1] * 5, atol=1e-6)


# ---- adapters ---------------------------------------------------------------------------------

def test_image_list_dataset_keys_labels_and_pixels(tmp_path, image_folder):
    root, lst, rows = image_folder
    rec = str(tmp_path / "list.rec")
    ds = ImageListDataset(lst, root=root)
    assert list(ds.record_keys) == [r[0] for r in rows]
    ds.to_recordio(rec, encoding=".png", num_workers=2, batch_size=4)
    records, keys = mx_records(rec)
    assert keys == [r[0] for r in rows]  # .lst order, .lst indices as keys
    for key, label, rel in rows:
        header, img = records[key]
        assert header.id == key and header.label == label and header.flag == 0
        src = mx.image.imread(os.path.join(root, rel)).asnumpy()
        np.testing.assert_array_equal(img, src)  # PNG: lossless, RGB preserved
    gluon = ImageRecordDataset(rec)
    assert len(gluon) == len(rows)
    img, label = gluon[3]
    assert img.shape[2] == 3 and label == rows[3][1]


def test_image_list_dataset_multi_labels_and_pack_label(tmp_path, image_folder):
    root, _, rows = image_folder
    lst = tmp_path / "multi.lst"
    lst.write_text("".join("%d\t%f\t%f\t%s\n" % (k, l, k / 10, rel) for k, l, rel in rows[:4]))
    rec = str(tmp_path / "m.rec")
    ImageListDataset(str(lst), root=root).to_recordio(rec)
    records, _ = mx_records(rec)
    for key, label, _ in rows[:4]:
        np.testing.assert_allclose(records[key][0].label, [label, key / 10], rtol=1e-6)
    first = ImageListDataset(str(lst), root=root, pack_label=False)
    assert first[0][1] == rows[0][1]


def test_array_dataset_list_of_varied_sizes(tmp_path, photos):
    imgs = [photos[0][1][:100, :120], photos[1][1][:90, :60], photos[2][1][:50, :50]]
    rec = str(tmp_path / "a.rec")
    ArrayDataset(imgs, [0, 1, 2]).to_recordio(rec, encoding=".png")
    records, keys = mx_records(rec)
    assert keys == [0, 1, 2]
    for key, img in zip(keys, imgs):
        np.testing.assert_array_equal(records[key][1], img)


class MyDataset(Dataset):
    """A user's own dataset: photos at their original sizes with integer labels."""

    def __init__(self, photos):
        self._photos = [p for _, p in photos]

    def __len__(self):
        return len(self._photos)

    def __getitem__(self, i):
        return mx.nd.array(self._photos[i], dtype=np.uint8), i % 3


def test_user_dataset_with_transform_first_compose_and_workers(tmp_path, photos):
    ds = MyDataset(photos).transform_first(
        transforms.Compose([transforms.Resize(80, keep_ratio=True), transforms.CenterCrop(64)]))
    rec = str(tmp_path / "t.rec")
    assert ds.to_recordio(rec, num_workers=2, batch_size=3) == rec
    data, labels = record_iter(rec, (3, 64, 64), batch_size=len(photos))
    assert data.shape == (len(photos), 3, 64, 64)
    np.testing.assert_array_equal(labels, [i % 3 for i in range(len(photos))])
    # pixels: the transformed image, JPEG-rounded
    expect = ds[1][0].asnumpy().astype(np.float32).transpose(2, 0, 1)
    assert np.abs(data[1] - expect).mean() < 4
    records, keys = mx_records(rec)
    assert keys == list(range(len(photos)))


def test_keys_follow_take_shard_and_transform(tmp_path, image_folder):
    root, lst, rows = image_folder
    ds = ImageListDataset(lst, root=root)
    part = ds.shard(3, 1).transform_first(transforms.Resize(32, keep_ratio=True)).take(4)
    rec = str(tmp_path / "s.rec")
    part.to_recordio(rec)
    _, keys = mx_records(rec)
    n = len(rows) // 3
    assert keys == [r[0] for r in rows[n:n + 4]]


@pytest.mark.parametrize("dataset", ["list", "array"])
def test_same_bytes_for_any_worker_count(tmp_path, image_folder, photos, dataset):
    root, lst, _ = image_folder
    if dataset == "list":
        ds = ImageListDataset(lst, root=root).transform_first(
            transforms.Resize(48, keep_ratio=True))
    else:
        ds = ArrayDataset([p[:64, :80] for _, p in photos], np.arange(len(photos)) % 2)
    blobs = set()
    for workers in (0, 1, 2, 4):
        rec = str(tmp_path / ("w%d.rec" % workers))
        ds.to_recordio(rec, num_workers=workers, batch_size=3)
        with open(rec, "rb") as f, open(rec[:-4] + ".idx", "rb") as g:
            blobs.add((f.read(), g.read()))
    assert len(blobs) == 1


# ---- items: bytes, tensors, errors ------------------------------------------------------------

def test_encoded_bytes_are_stored_verbatim(tmp_path, image_folder):
    root, lst, rows = image_folder
    rec = str(tmp_path / "p.rec")
    ImageListDataset(lst, root=root, decode=False).to_recordio(rec)
    r = mx.recordio.MXIndexedRecordIO(rec[:-4] + ".idx", rec, "r")
    for key, _, rel in rows:
        _, body = mx.recordio.unpack(r.read_idx(key))
        with open(os.path.join(root, rel), "rb") as f:
            assert body == f.read()
    r.close()


def test_float_tensors_need_npy_and_round_trip_with_it(tmp_path, photos):
    ds = MyDataset(photos[:3]).transform_first(
        transforms.Compose([transforms.Resize(16), transforms.ToTensor()]))
    with pytest.raises(rp.TransformError, match=r"raised ImageEncodeError on each of the first "
                                                r"3 items.*encoding='.npy'"):
        ds.to_recordio(str(tmp_path / "bad.rec"))
    assert not os.path.exists(tmp_path / "bad.rec")
    rec = str(tmp_path / "t.rec")
    ds.to_recordio(rec, encoding=".npy")
    r = mx.recordio.MXIndexedRecordIO(rec[:-4] + ".idx", rec, "r")
    import io
    for key in r.keys:
        header, body = mx.recordio.unpack(r.read_idx(key))
        arr = np.load(io.BytesIO(body))
        np.testing.assert_array_equal(arr, ds[key][0].asnumpy())
        assert arr.dtype == np.float32 and arr.shape == (3, 16, 16)
    r.close()


def test_a_failing_run_leaves_no_file_and_keeps_the_old_one(tmp_path):
    rec = tmp_path / "keep.rec"
    ArrayDataset(np.stack([solid(c) for c in COLOURS]), np.arange(4)).to_recordio(str(rec))
    before = (rec.read_bytes(), (tmp_path / "keep.idx").read_bytes())
    with pytest.raises(RuntimeError, match="boom"):
        with RecordFileWriter(str(rec)) as w:
            w.write(solid(COLOURS[0]), 0)
            raise RuntimeError("boom")
    assert (rec.read_bytes(), (tmp_path / "keep.idx").read_bytes()) == before
    assert sorted(os.listdir(tmp_path)) == ["keep.crc", "keep.idx", "keep.rec"]


def test_overwrite_false_refuses_before_writing(tmp_path):
    rec = tmp_path / "x.rec"
    rec.write_bytes(b"old")
    with pytest.raises(rp.OutputExistsError, match="overwrite=True"):
        RecordFileWriter(str(rec), overwrite=False)
    assert rec.read_bytes() == b"old"


def test_options_are_validated(tmp_path):
    with pytest.raises(rp.OptionError, match=r"encoding = '.bmp' is not valid; expected "
                                             r"'.jpg', '.png' or '.npy'"):
        RecordFileWriter(str(tmp_path / "a.rec"), encoding=".bmp")
    with pytest.raises(rp.OptionError,
                       match=r"quality = 101 is not valid; expected None \(the format.s "
                             r"default\) or an integer: 1-100"):
        RecordFileWriter(str(tmp_path / "a.rec"), quality=101)
    with pytest.raises(rp.OptionError, match="is a directory"):
        RecordFileWriter(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="output folder"):
        RecordFileWriter(str(tmp_path / "nope" / "a.rec"))
    assert os.listdir(tmp_path) == []


def test_a_duplicate_key_is_refused_by_the_write_that_repeats_it(tmp_path):
    """One repeated key among 1,000 writes: that write raises, naming the key; the writer
    stays usable and the other records are kept."""
    rec = str(tmp_path / "d.rec")
    img = solid(COLOURS[0], 8, 8)
    with RecordFileWriter(rec) as w:
        for key in range(1000):
            w.write(img, key % 7, key=key)
            if key == 500:
                with pytest.raises(rp.DuplicateKeyError, match="key 17 is already in this file"):
                    w.write(img, 0, key=17)
    records, keys = mx_records(rec)
    assert keys == list(range(1000))
    assert records[17][0].label == 17 % 7


def test_items_that_fail_are_skipped_and_reported(tmp_path):
    items = [(solid(COLOURS[0]), 0), ("not an image", 1), (solid(COLOURS[1]), 2)]
    rec = str(tmp_path / "f.rec")
    summary = None
    with RecordFileWriter(rec) as w:
        summary = w.write_dataset(SimpleDataset(items))
    assert (summary.written, summary.failed) == (2, 1)
    _, keys = mx_records(rec)
    assert keys == [0, 2]
    import json
    with open(str(tmp_path / "f.failures.jsonl")) as f:
        report = [json.loads(line) for line in f]
    assert [(r["index"], r["key"]) for r in report] == [(1, 1)]
    with pytest.raises(rp.TooManyFailuresError, match="1 of 3 items failed, more than "
                                                      "max_failures=0"):
        SimpleDataset(items).to_recordio(str(tmp_path / "g.rec"), max_failures=0)
    assert not os.path.exists(tmp_path / "g.rec")


def test_mxnet_recpack_import_does_not_import_mxnet():
    import subprocess
    import sys
    code = ("import sys, mxnet_recpack; assert 'mxnet' not in sys.modules; "
            "from mxnet.gluon.data import Dataset; assert Dataset.to_recordio")
    subprocess.run([sys.executable, "-c", code], check=True)
