"""NVIDIA DALI's MXNet reader (``fn.readers.mxnet``, CPU decoder) reads every kind of record
recpack writes: JPEG, PNG, gray, vector and detection labels, and records whose payload holds
the magic word (continuation frames), with the same keys, labels, bytes and pixels."""
import numpy as np
import pytest

import mxnet_recpack as rp
from conftest import _read_with_dali
from helpers import solid, write_lst
from mxnet_recpack import RecordDataset, RecordFileWriter
from mxnet_recpack.format.framing import MAGIC_BYTES

pytestmark = pytest.mark.dali


def _cv2_rgb(data):
    import cv2
    return cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR),
                        cv2.COLOR_BGR2RGB)


@pytest.fixture
def every_kind(tmp_path, image_folder, photos):
    """A list packed by ``recpack im2rec`` (JPEG and, in a second file, PNG, gray), and records
    written one by one: vector and detection labels, magic words inside payloads. Every label
    starts with the record's key, so the order DALI reads them in shows the keys."""
    root, lst, rows = image_folder
    files = []
    for name, params in (("jpeg", {"resize": 40}), ("png", {"encoding": ".png", "resize": 30}),
                         ("gray", {"color": 0, "resize": 36, "pack_label": True})):
        keyed = write_lst(tmp_path / (name + ".lst"), [(k, [k, lab], rel) for k, lab, rel in rows])
        files.append(rp.im2rec(keyed, None, dict(params, root=root, pack_label=True),
                               str(tmp_path / name)))
    rec = str(tmp_path / "by_hand.rec")
    with RecordFileWriter(rec, encoding=".png") as w:
        w.write(photos[0][1][:50, :60], [100, 1, 2, 3], key=100)                  # vector
        w.write(solid((255, 0, 0), 64, 64), [101, 2, 6, 0, .1, .2, .5, .6], key=101)  # detection
        for key in (102, 103):
            png = rp.images.codec.encode_image(solid((0, 0, 255), 8, 8), ".png", 3)
            tail = b"\0" * (-len(png) % 4) + MAGIC_BYTES * (key - 101)           # aligned magic
            w.write(png + tail, [key, 9], key=key)
    files.append(rec)
    return files


def test_dali_reads_every_kind_of_record(every_kind):
    for rec in every_kind:
        ours = RecordDataset(rec)
        theirs = _read_with_dali(rec)
        assert len(theirs) == len(ours) > 0, rec
        for i, (label, raw, pixels) in enumerate(theirs):
            key, header, body = ours.records.record(i)
            assert bytes(raw) == bytes(body), (rec, key)                # the same image bytes
            np.testing.assert_array_equal(label, header.label)         # the same labels...
            assert int(label[0]) == key == int(ours.keys[i])           # ...and keys, in order
            np.testing.assert_array_equal(pixels.shape[:2], _cv2_rgb(raw).shape[:2])
            if bytes(raw[:4]) == b"\x89PNG":
                np.testing.assert_array_equal(pixels, _cv2_rgb(raw))   # lossless: exactly
            else:
                assert np.abs(pixels.astype(int) - _cv2_rgb(raw)).mean() < 1.5


def test_dali_and_our_reader_agree_on_pixels(every_kind):
    for rec in every_kind:
        ours = RecordDataset(rec, color=1)
        for (label, _, pixels), (image, our_label) in zip(_read_with_dali(rec), ours):
            np.testing.assert_array_equal(label, our_label)
            assert np.abs(pixels.astype(int) - image.astype(int)).mean() < 1.5


def _dali_samples(rec):
    """Every sample DALI's MXNet reader gives, in file order: (raw image bytes, label list),
    undecoded (a 0-byte sample would not decode)."""
    from nvidia.dali import fn, pipeline_def

    @pipeline_def(batch_size=4, num_threads=1, device_id=None, prefetch_queue_depth=1)
    def pipe():
        raw, labels = fn.readers.mxnet(path=[str(rec)], index_path=[str(rec)[:-4] + ".idx"],
                                       random_shuffle=False, name="reader")
        return raw, labels

    p = pipe()
    p.build()
    n, out = p.epoch_size("reader"), []
    while len(out) < n:
        raw, labels = p.run()
        out.extend((np.array(raw.at(i)).tobytes(), np.array(labels.at(i)).tolist())
                   for i in range(len(raw)))
    return out[:n]


def _ours(rec):
    """(image bytes, label list) of every record in file order, label-only ones included."""
    from mxnet_recpack.sources.records import RecordSet
    records = RecordSet(str(rec))
    out = []
    for i in range(len(records)):
        _, header, body = records.record(i)
        out.append((bytes(body), np.atleast_1d(np.asarray(header.label, np.float32)).tolist()))
    return out


def test_dali_reads_an_insightface_file_and_its_images_alone(tmp_path):
    """NVIDIA/DALI#2806: DALI has taken InsightFace's header and identity records as samples
    (0-byte images). Whichever way DALI goes, what users see holds: DALI gives each image of
    the face file with its bytes and label, and at most the label-only records besides (no
    bytes, their labels); `filter --drop-label-only` leaves it exactly the images; and
    RecordDataset's InsightFace view reads the same images and identities."""
    import cv2
    root = tmp_path / "people"
    for person, n in (("ann", 2), ("ben", 3)):
        (root / person).mkdir(parents=True)
        for i in range(n):
            cv2.imwrite(str(root / person / ("%d.jpg" % i)), np.full((20, 20, 3), 9 * i, np.uint8))
    prefix = str(tmp_path / "faces")
    rp.make_list(str(root), prefix, recursive=True)
    rec = rp.im2rec(prefix + ".lst", None, {"root": str(root), "insightface": True})
    every = _ours(rec)
    images = [(raw, label) for raw, label in every if raw]
    assert len(images) == 5 and len(every) == 5 + 2 + 1  # images, identities, the header
    assert _dali_samples(rec) in (every, images)  # label-only records as samples, or not
    rp.filter_records(rec, tmp_path / "images.rec", drop_label_only=True)
    assert _dali_samples(tmp_path / "images.rec") == images == _ours(tmp_path / "images.rec")
    view = RecordDataset(rec, insightface=True)
    assert [view[i][1] for i in range(len(view))] == [0.0, 0.0, 1.0, 1.0, 1.0]
    assert [label[0] for _, label in images] == [0.0, 0.0, 1.0, 1.0, 1.0]
