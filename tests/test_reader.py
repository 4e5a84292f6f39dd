"""The framework-free reader, RecordDataset: positions, labels, gray, label-only records, parts,
S3, pickling, fork/spawn/threads, and the DataLoaders that drive it (PyTorch's and Gluon's).

Every file is also read by a reader that is not ours (MXNet's, or DALI's without MXNet), and
the reader must give the same labels and pixels."""
import multiprocessing
import os
import pickle
import struct
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pytest

import mxnet_recpack as rp
from helpers import idx_of, solid, write_arrays
from mxnet_recpack import RecordDataset, RecordFileWriter
from mxnet_recpack.format.framing import MAGIC_BYTES

COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (250, 200, 10)]


def png(img):
    """PNG bytes of an RGB (or gray) numpy image: lossless, so pixels compare exactly."""
    arr = img if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
    return cv2.imencode(".png", arr)[1].tobytes()


@pytest.fixture
def mixed(tmp_path, photos):
    """Colour JPEG, colour PNG, gray PNG, vector labels, a payload holding the magic word at
    an aligned offset, and label-only records (an InsightFace-style header and identity)."""
    rec = str(tmp_path / "mixed.rec")
    photo = photos[0][1][:60, :80]
    gray = np.tile(np.arange(40, dtype=np.uint8) * 6, (30, 1))
    small = png(solid(COLOURS[1], 8, 8))
    magic = small + b"\0" * (-len(small) % 4) + MAGIC_BYTES * 2  # aligned in the payload
    with RecordFileWriter(rec, encoding=".png") as w:
        w.write(b"", [3, 5], key=0)                          # label-only (InsightFace header)
        w.write(photo, 1, key=10)                            # colour, PNG
        w.write(cv2.imencode(".jpg", cv2.cvtColor(photo, cv2.COLOR_RGB2BGR))[1].tobytes(),
                2, key=11)                                   # colour JPEG bytes
        w.write(gray, 3, key=12)                             # gray PNG
        w.write(solid(COLOURS[0]), [1, 2, 3.5], key=13)      # vector label
        w.write(magic, 4, key=14)                            # split into continuation frames
        w.write(b"", [10, 15], key=15)                       # label-only (identity record)
    return rec, photo, gray


def test_positions_labels_gray_and_label_only_records(mixed):
    rec, photo, gray = mixed
    ds = RecordDataset(rec)
    assert len(ds) == 5 and list(ds.keys) == [10, 11, 12, 13, 14]  # label-only: not items
    img, label = ds[0]
    assert img.dtype == np.uint8 and img.shape == photo.shape and label == 1.0
    np.testing.assert_array_equal(img, photo)                    # PNG: RGB, exactly
    jpg, _ = ds[1]
    assert jpg.shape == photo.shape and np.abs(jpg.astype(int) - photo).mean() < 3
    g, label = ds[2]
    assert g.shape == (30, 40, 1) and label == 3.0
    np.testing.assert_array_equal(g[:, :, 0], gray)
    red, label = ds[3]
    assert isinstance(label, np.ndarray) and label.dtype == np.float32
    np.testing.assert_array_equal(label, [1, 2, 3.5])
    np.testing.assert_array_equal(red[3, 4], COLOURS[0])
    offset = int(open(idx_of(rec)).read().splitlines()[5].split("\t")[1])
    with open(rec, "rb") as f:
        f.seek(offset + 4)
        assert struct.unpack("<I", f.read(4))[0] >> 29 == 1  # really split into frames
    assert ds[-1][1] == 4.0 and ds[4][0].shape == (8, 8, 3)     # the split record decodes
    with pytest.raises(IndexError, match="position 5 is out of range for 5 images"):
        ds[5]


def test_colour_options_and_transform(mixed):
    rec, photo, gray = mixed
    assert RecordDataset(rec, color=1)[2][0].shape == (30, 40, 3)
    assert RecordDataset(rec, color=0)[0][0].shape == photo.shape[:2] + (1,)
    flipped = RecordDataset(rec, transform=lambda img: img[:, ::-1])[0][0]
    np.testing.assert_array_equal(flipped, photo[:, ::-1])
    with pytest.raises(rp.OptionError, match=r"color = 2 is not valid; expected 1, 0 or -1"):
        RecordDataset(rec, color=2)


def test_agrees_with_a_real_reader(tmp_path, photos, real_reader):
    rec = write_arrays(tmp_path / "a.rec", [p[:50, :70] for _, p in photos[:6]],
                       [[i, i / 2] for i in range(6)], encoding=".jpg")
    theirs = real_reader(rec)
    ours = RecordDataset(rec)
    assert len(ours) == len(theirs) == 6
    for i, ((image, label), (their_label, raw, pixels)) in enumerate(zip(ours, theirs)):
        assert bytes(ours.records.record(i)[2]) == bytes(raw)
        np.testing.assert_array_equal(label, their_label)
        assert np.abs(image.astype(int) - pixels.astype(int)).max() <= 1


def test_parts_are_one_dataset(tmp_path, image_folder):
    root, lst, rows = image_folder
    whole = rp.im2rec(lst, None, {"root": root, "resize": 32}, str(tmp_path / "whole"))
    parts = rp.im2rec(lst, None, {"root": root, "resize": 32, "nsplit": 3}, str(tmp_path / "p"))
    assert [os.path.basename(p) for p in parts] == ["p.part%03d.rec" % k for k in range(3)]
    together = RecordDataset(str(tmp_path / "p.part*.rec"))
    listed = RecordDataset(parts)
    single = RecordDataset(whole)
    assert len(together) == len(listed) == len(single) == len(rows)
    assert list(together.keys) == list(single.keys) == [k for k, _, _ in rows]
    for i in range(len(rows)):
        a, b = together[i], single[i]
        assert a[1] == b[1] == rows[i][1]
        np.testing.assert_array_equal(a[0], b[0])
    with pytest.raises(FileNotFoundError, match="no record file matches this pattern"):
        RecordDataset(str(tmp_path / "q.part*.rec"))


def _read_all(ds, positions):
    """A comparable fingerprint of the items at ``positions``: pixel sum and label values."""
    return [(int(ds[i][0].sum()), tuple(np.atleast_1d(ds[i][1]).tolist())) for i in positions]


def _worker_read(args):
    ds, positions = args
    return _read_all(ds, positions)


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_pickled_to_workers_under_every_start_method(mixed, method):
    """Opened (and read) in the parent first: the workers must not inherit its handles."""
    rec, _, _ = mixed
    ds = RecordDataset(rec)
    expected = _read_all(ds, range(len(ds)))
    copy = pickle.loads(pickle.dumps(ds))  # no descriptor travels: the copy opens its own
    assert copy.records._files._open == {} and _read_all(copy, [0]) == expected[:1]
    with multiprocessing.get_context(method).Pool(2) as pool:
        got = pool.map(_worker_read, [(ds, [i]) for i in range(len(ds))])
    assert [g[0] for g in got] == expected


def test_threads_share_one_dataset(mixed):
    rec, _, _ = mixed
    ds = RecordDataset(rec)
    expected = _read_all(ds, range(len(ds))) * 20
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda i: _read_all(ds, [i % len(ds)])[0], range(len(expected))))
    assert got == expected


def test_errors_name_the_file_and_the_fix(tmp_path, mixed):
    rec, _, _ = mixed
    os.rename(idx_of(rec), str(tmp_path / "moved.idx"))
    with pytest.raises(FileNotFoundError, match=r"mixed\.idx: index file not found; rebuild it "
                                                r"with `recpack index"):
        RecordDataset(rec)
    os.rename(str(tmp_path / "moved.idx"), idx_of(rec))
    data = bytearray(open(rec, "rb").read())
    first = int(open(idx_of(rec)).read().splitlines()[1].split("\t")[1])
    data[first:first + 4] = b"XXXX"
    open(rec, "wb").write(bytes(data))
    with pytest.raises(rp.RecordFormatError, match=r"mixed\.rec, byte offset %d: no record "
                                                   r"starts here \(key 10" % first):
        RecordDataset(rec)
    open(idx_of(rec), "a").write("10\t%d\n" % first)
    with pytest.raises(rp.IndexFormatError, match="listed more than once"):
        RecordDataset(rec)


@pytest.mark.s3
def test_s3_is_the_same_dataset(tmp_path, mixed, s3):
    fs, bucket = s3
    rec, photo, _ = mixed
    fs.put_file(rec, "%s/r/mixed.rec" % bucket)
    fs.put_file(idx_of(rec), "%s/r/mixed.idx" % bucket)
    remote, local = RecordDataset("s3://%s/r/mixed.rec" % bucket), RecordDataset(rec)
    assert list(remote.keys) == list(local.keys)
    for i in range(len(local)):
        np.testing.assert_array_equal(remote[i][0], local[i][0])
        np.testing.assert_array_equal(remote[i][1], local[i][1])
    assert len(RecordDataset("s3://%s/r/mix*.rec" % bucket)) == len(local)


class Scale:
    """A picklable transform (module level): what spawned DataLoader workers need."""

    def __call__(self, img):
        return cv2.resize(img, (16, 16), interpolation=cv2.INTER_AREA)


@pytest.mark.torch
@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_torch_dataloader_with_two_workers(tmp_path, method):
    import torch
    from torch.utils.data import DataLoader
    rec = write_arrays(tmp_path / "c.rec", [solid(c, 20, 30) for c in COLOURS * 5],
                       list(range(20)), encoding=".png")
    ds = RecordDataset(rec, transform=Scale())
    loader = DataLoader(ds, batch_size=6, num_workers=2,
                        multiprocessing_context=method)
    images, labels = zip(*loader)
    images, labels = torch.cat(images), torch.cat(labels)
    assert images.shape == (20, 16, 16, 3) and images.dtype == torch.uint8
    assert labels.tolist() == list(range(20))
    centre = images[:, 8, 8].numpy()
    np.testing.assert_array_equal(centre, np.array(COLOURS * 5))  # red is red: RGB


@pytest.mark.mxnet
def test_gluon_dataloader_with_two_workers(tmp_path):
    from mxnet.gluon.data import DataLoader
    rec = write_arrays(tmp_path / "c.rec", [solid(c, 20, 30) for c in COLOURS * 3],
                       list(range(12)), encoding=".png")
    loader = DataLoader(RecordDataset(rec, transform=Scale()), batch_size=5, num_workers=2)
    images = np.concatenate([b[0].asnumpy() for b in loader])
    labels = np.concatenate([b[1].asnumpy() for b in loader])
    assert images.shape == (12, 16, 16, 3)
    np.testing.assert_array_equal(labels, np.arange(12))
    np.testing.assert_array_equal(images[:, 8, 8], np.array(COLOURS * 3))


def test_a_file_of_label_only_records_has_no_images(tmp_path):
    rec = str(tmp_path / "l.rec")
    with RecordFileWriter(rec) as w:
        w.write(b"", [1, 2], key=0)
        w.write(b"", 7, key=1)
    assert len(RecordDataset(rec)) == 0
