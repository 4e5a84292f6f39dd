"""Speed never costs correctness: every fast path against the plain path it replaces."""
import os
import shutil
import subprocess
import sys

import cv2
import mxnet as mx
import numpy as np
import pytest
from mxnet.gluon.data.vision import transforms as T

import mxnet_recpack as rp
from helpers import read, write_lst
from mxnet_recpack.gluon import fastpath
from mxnet_recpack.errors import OptionError
from mxnet_recpack.images.codec import BGR, decode_image, encode_image
from mxnet_recpack.images.transform import center_crop_square, reduced_decode_factor
from mxnet_recpack.sources.image_list import ImageList

pytestmark = pytest.mark.mxnet  # read back with MXNet's own readers




@pytest.fixture(scope="module")
def varied(tmp_path_factory):
    """Photos of many shapes (portrait, landscape, tiny), JPEG and PNG, gray too."""
    root = tmp_path_factory.mktemp("varied")
    rng = np.random.RandomState(4)
    rows = []
    for i, (_, photo) in enumerate(rp.samples.sample_photos()):
        h, w = int(rng.randint(20, 400)), int(rng.randint(20, 400))
        img = cv2.resize(photo, (w, h), interpolation=cv2.INTER_AREA)
        name = "p%02d.%s" % (i, "png" if i % 3 == 0 else "jpg")
        cv2.imwrite(str(root / name), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
        rows.append((i, i % 3, name))
    lst = write_lst(root / "v.lst", rows)
    return str(root), lst


GLUON_TRANSFORMS = [
    ("resize_keep_bilinear", T.Resize(64, keep_ratio=True)),
    ("resize_keep_nearest", T.Resize(50, keep_ratio=True, interpolation=0)),
    ("resize_keep_area", T.Resize(40, keep_ratio=True, interpolation=3)),
    ("resize_keep_lanczos", T.Resize(90, keep_ratio=True, interpolation=4)),
    ("resize_square", T.Resize(48)),
    ("resize_wh", T.Resize((70, 30))),
    ("center_crop", T.CenterCrop(32)),
    ("center_crop_wh_larger_than_image", T.CenterCrop((300, 120))),
    ("compose", T.Compose([T.Resize(72, keep_ratio=True), T.CenterCrop(64)])),
    ("nested_compose", T.Compose([T.Compose([T.Resize(80, keep_ratio=True)]),
                                  T.CenterCrop((60, 40), interpolation=0)])),
]


@pytest.mark.parametrize("name, transform", GLUON_TRANSFORMS, ids=[g[0] for g in GLUON_TRANSFORMS])
@pytest.mark.parametrize("color", [1, 0])
def test_compiled_gluon_transforms_give_the_same_bytes(tmp_path, varied, monkeypatch, name,
                                                       transform, color):
    root, lst = varied
    ds = rp.ImageListDataset(lst, root=root, color=color).transform_first(transform)
    assert fastpath.fast_item_getter(ds) is not None
    fast = ds.to_recordio(str(tmp_path / "fast.rec"), encoding=".png")
    monkeypatch.setattr(fastpath, "enabled", False)
    plain = ds.to_recordio(str(tmp_path / "plain.rec"), encoding=".png")
    assert read(fast) == read(plain)
    assert read(fast[:-4] + ".idx") == read(plain[:-4] + ".idx")


@pytest.mark.parametrize("transform", [T.Resize(64, keep_ratio=True, interpolation=2),
                                       T.Compose([T.Resize(64), T.ToTensor()]),
                                       T.RandomFlipLeftRight()])
def test_transforms_without_an_exact_equivalent_stay_on_the_gluon_path(varied, transform):
    root, lst = varied
    ds = rp.ImageListDataset(lst, root=root).transform_first(transform)
    assert fastpath.fast_item_getter(ds) is None


def test_bgr_pipeline_matches_rgb_items(varied):
    """The writer's BGR items encode to the same bytes as the RGB items users see."""
    root, lst = varied
    src = ImageList(lst, root=root, resize=33)
    for i in range(len(src)):
        bgr, label = src.record_item(i)
        rgb, label2 = src[i]
        assert isinstance(bgr, BGR) and label == label2
        assert encode_image(bgr, ".png", 9) == encode_image(rgb, ".png", 9)


def test_plain_pool_and_dataloader_give_the_same_bytes(tmp_path, varied):
    root, lst = varied
    with rp.RecordFileWriter(str(tmp_path / "pool.rec")) as w:
        w.write_dataset(ImageList(lst, root=root, resize=40), num_workers=2, batch_size=3)
    with rp.RecordFileWriter(str(tmp_path / "loader.rec")) as w:
        w.write_dataset(rp.ImageListDataset(lst, root=root, resize=40), num_workers=2,
                        batch_size=3)
    with rp.RecordFileWriter(str(tmp_path / "threads.rec")) as w:
        w.write_dataset(ImageList(lst, root=root, resize=40), num_workers=2, batch_size=3,
                        thread_pool=True)
    assert read(tmp_path / "pool.rec") == read(tmp_path / "loader.rec") == \
        read(tmp_path / "threads.rec")


def test_im2rec_without_transforms_never_imports_mxnet(tmp_path, varied):
    root, lst = varied
    code = ("import sys; from mxnet_recpack.cli import main; "
            "rc = main(['im2rec', '-q', '--num-thread', '2', '--resize', '32', %r, %r]); "
            "rc |= main(['im2rec', '-q', '--pass-through', '--no-overwrite', %r, %r]); "
            "assert rc == 0; assert 'mxnet' not in sys.modules, 'mxnet was imported'"
            % (str(tmp_path / "a" / "v"), root, str(tmp_path / "b" / "v"), root))
    for d in ("a", "b"):
        os.makedirs(tmp_path / d)
        (tmp_path / d / "v.lst").write_bytes(read(lst))
    subprocess.run([sys.executable, "-c", code], check=True)
    assert mx.recordio.MXIndexedRecordIO(str(tmp_path / "a" / "v.idx"),
                                         str(tmp_path / "a" / "v.rec"), "r").keys


# ---- JPEG DCT-domain downscaling -----------------------------------------------------------

def psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * np.log10(255.0 ** 2 / mse)


@pytest.fixture(scope="module")
def camera(tmp_path_factory):
    """Camera-size JPEGs (1600-3000 px) made from the sample photos."""
    root = tmp_path_factory.mktemp("camera")
    files = rp.samples.make_image_folder(str(root), classes=2, per_class=3,
                                         long_side=(2400, 3000), quality=92, seed=8)
    lst = write_lst(root / "c.lst", [(i, 0, f) for i, f in enumerate(files)])
    return str(root), lst, files


@pytest.mark.parametrize("inter_method", [3, 9])
@pytest.mark.parametrize("center_crop", [False, True])
def test_reduced_decode_matches_full_decode_quality(camera, inter_method, center_crop):
    root, lst, files = camera
    fast = ImageList(lst, root=root, resize=256, inter_method=inter_method,
                     center_crop=center_crop)
    used = set()
    for i, rel in enumerate(files):
        full = cv2.imread(os.path.join(root, rel), cv2.IMREAD_COLOR)
        factor = reduced_decode_factor(*full.shape[:2], 256, center_crop=center_crop)
        used.add(factor)
        if center_crop:
            full = center_crop_square(full)
        h, w = full.shape[:2]
        size = (256, h * 256 // w) if h > w else (w * 256 // h, 256)
        reference = cv2.resize(full, size, interpolation=cv2.INTER_AREA)
        got, _ = fast.record_item(i)
        assert got.shape == reference.shape  # the same size as a full decode gives
        assert psnr(np.asarray(got), reference) >= 35
    assert used & {2, 4, 8}  # the fast path was taken


def test_reduced_decode_on_with_bilinear_is_as_good_as_a_full_decode(camera):
    """``reduced_decode=True`` with the default bilinear resize: the same sizes as im2rec.py's
    full decode, and as close to a full decode + area resize as im2rec.py's own pixels."""
    root, lst, files = camera
    fast = ImageList(lst, root=root, resize=256, reduced_decode=True)
    exact = ImageList(lst, root=root, resize=256)
    ours, theirs = [], []
    for i, rel in enumerate(files):
        full = cv2.imread(os.path.join(root, rel), cv2.IMREAD_COLOR)
        assert reduced_decode_factor(*full.shape[:2], 256) > 1  # the fast path is taken
        h, w = full.shape[:2]
        size = (256, h * 256 // w) if h > w else (w * 256 // h, 256)
        reference = cv2.resize(full, size, interpolation=cv2.INTER_AREA)
        got, plain = fast.record_item(i)[0], exact.record_item(i)[0]
        np.testing.assert_array_equal(np.asarray(plain), cv2.resize(full, size))
        assert got.shape == plain.shape
        ours.append(psnr(np.asarray(got), reference))
        theirs.append(psnr(np.asarray(plain), reference))
    assert min(ours) >= 34
    assert np.mean(ours) >= np.mean(theirs) - 1.0


def test_reduced_decode_flag_of_the_cli(camera, tmp_path):
    root, lst, files = camera
    from mxnet_recpack.cli import main as recpack_main
    shutil.copy(lst, tmp_path / "c.lst")
    assert recpack_main(["im2rec", "-q", "--resize", "256", "--reduced-decode", "on",
                         "--encoding", ".png", str(tmp_path / "c"), root]) == 0
    fast = ImageList(lst, root=root, resize=256, reduced_decode=True)
    record = mx.recordio.MXIndexedRecordIO(str(tmp_path / "c.idx"), str(tmp_path / "c.rec"), "r")
    for i in range(len(files)):
        _, img = mx.recordio.unpack_img(record.read_idx(i))
        np.testing.assert_array_equal(img, np.asarray(fast.record_item(i)[0]))


def test_reduced_decode_off_keeps_full_decode_pixels(camera):
    root, lst, files = camera
    area = ImageList(lst, root=root, resize=256, inter_method=3, reduced_decode=False)
    full = cv2.imread(os.path.join(root, files[0]), cv2.IMREAD_COLOR)
    h, w = full.shape[:2]
    size = (256, h * 256 // w) if h > w else (w * 256 // h, 256)
    np.testing.assert_array_equal(np.asarray(area.record_item(0)[0]),
                                  cv2.resize(full, size, interpolation=cv2.INTER_AREA))
    with pytest.raises(OptionError, match="reduced_decode"):
        ImageList(lst, root=root, reduced_decode=1)


def test_reduced_decode_only_where_it_is_safe(camera, varied):
    root, lst, files = camera
    data = read(os.path.join(root, files[0]))
    small = decode_image(data, 1, rgb=False, reduce=8)
    full = decode_image(data, 1, rgb=False)
    assert small.shape[0] == -(-full.shape[0] // 8)
    assert reduced_decode_factor(900, 1200, 256) == 1  # under 4x the target: full decode
    assert reduced_decode_factor(1100, 1650, 256) == 2  # 550 px at 1/2 >= 2 x 256
    assert reduced_decode_factor(4200, 5000, 256) == 8
    assert reduced_decode_factor(2000, 3002, 256, center_crop=True) == 1  # margin 501 is odd
    # the default bilinear resize keeps im2rec.py's exact full-decode pixels
    exact = ImageList(lst, root=root, resize=256)
    got, _ = exact.record_item(0)
    full = cv2.imread(os.path.join(root, files[0]), cv2.IMREAD_COLOR)
    h, w = full.shape[:2]
    size = (256, h * 256 // w) if h > w else (w * 256 // h, 256)
    np.testing.assert_array_equal(np.asarray(got), cv2.resize(full, size))


MAGIC = 0xCED7230A  # RecordIO's magic word: dmlc splits a record where its payload holds it


def magic_jpeg(rgb):
    """A JPEG whose bytes hold the magic word at 4-aligned offsets (and at an unaligned one),
    in a comment segment after the start marker."""
    jpg = cv2.imencode(".jpg", rgb)[1].tobytes()
    word = MAGIC.to_bytes(4, "little")
    comment = b"xy" + word + b"z" + word + b"abc" + word + b"q" * 3
    return jpg[:2] + b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment + jpg[2:]


def odd_pass_through_rows(root):
    """Files a pass-through batch meets, and list rows for them: plain JPEGs, one holding the
    magic word, one larger than a batch's first buffer, a PNG, a key and a label whose bytes
    are the magic word; items that fail (missing, not an image, truncated, empty, a
    directory, a GIF), among them the first and the last."""
    rng = np.random.RandomState(7)
    jpegs = [cv2.imencode(".jpg", rng.randint(0, 255, (40 + i, 30 + 2 * i, 3)).astype(
        np.uint8))[1].tobytes() for i in range(6)]
    big = cv2.imencode(".jpg", rng.randint(0, 255, (900, 900, 3)).astype(np.uint8),
                       [cv2.IMWRITE_JPEG_QUALITY, 100])[1].tobytes()
    assert len(big) > (1 << 20)  # beyond the first buffer of a batch: it grows
    files = {"a.jpg": jpegs[0], "b.jpg": jpegs[1], "magic.jpg": magic_jpeg(
        rng.randint(0, 255, (20, 20, 3)).astype(np.uint8)), "big.jpg": big,
             "c.png": cv2.imencode(".png", np.full((9, 7, 3), 200, np.uint8))[1].tobytes(),
             "d.jpg": jpegs[2], "e.jpg": jpegs[3], "text.jpg": b"not an image at all",
             "cut.jpg": jpegs[4][:len(jpegs[4]) // 2], "empty.jpg": b"", "f.jpg": jpegs[5],
             "anim.gif": b"GIF89a" + bytes(30)}
    for name, data in files.items():
        (root / name).write_bytes(data)
    (root / "folder.jpg").mkdir()
    magic_label = float(np.frombuffer(MAGIC.to_bytes(4, "little"), "<f4")[0])
    names = ["missing.jpg", "a.jpg", "magic.jpg", "text.jpg", "b.jpg", "big.jpg", "cut.jpg",
             "c.png", "empty.jpg", "d.jpg", "folder.jpg", "e.jpg", "anim.gif", "f.jpg",
             "b.jpg", "a.jpg", "missing2.jpg"]
    rows = [(k, k % 4, name) for k, name in enumerate(names)]
    rows[4] = (MAGIC, 1, "b.jpg")  # the key is the magic word: the header must be split
    rows[9] = (30, magic_label, "d.jpg")  # so is the label
    rows[11] = (31, [1.5, 2.5, 3.5], "e.jpg")  # a label vector
    return rows


def test_pass_through_batches_frame_as_items_one_by_one(tmp_path):
    """Pass-through reads a batch's files straight into one buffer behind their headers: the
    same records (frames, CRCs) and failures as the item-by-item path, for any batch split,
    and a buffer is never reused while a batch's records are held."""
    from mxnet_recpack.images.codec import ImageEncoder
    from mxnet_recpack.pipeline.encoder import RecordEncoder
    from mxnet_recpack.pipeline.items import as_items
    rows = odd_pass_through_rows(tmp_path)
    items = ImageList(write_lst(tmp_path / "odd.lst", rows), root=str(tmp_path), decode=False)
    assert as_items(items).bytes_into is not None  # the batch path is the one tested
    enc = RecordEncoder(items, keys=items.record_keys, source_of=items.record_source,
                        encoder=ImageEncoder(".jpg", 95))

    def plain(records):
        return [(r[0], r[1]) if isinstance(r[1], dict) else
                (r[0], b"".join(bytes(b) for b in r[1]), r[2]) for r in records]

    singles = plain([enc[i] for i in range(len(items))])
    failed = [r[1]["source"] for r in singles if len(r) == 2]
    assert [os.path.basename(s) for s in failed] == [
        "missing.jpg", "text.jpg", "cut.jpg", "empty.jpg", "folder.jpg", "anim.gif",
        "missing2.jpg"]
    held = []
    for size in (1, 2, 3, 5, len(items)):
        for _ in range(2):
            batches = [enc.encode_batch(range(s, min(s + size, len(items))))
                       for s in range(0, len(items), size)]
            held.append(batches)
            assert plain([r for b in batches for r in b]) == singles, size
    for batches in held:  # still the same bytes: no buffer was reused under them
        assert plain([r for b in batches for r in b]) == singles
    split = [r for r in singles if len(r) == 3 and r[1].count(MAGIC.to_bytes(4, "little")) > 1]
    assert len(split) == 3  # the magic JPEG, key and label: continuation frames


def test_pass_through_batches_hold_a_bounded_number_of_bytes(tmp_path):
    """Large files go in smaller batches (about BATCH_BYTES of them, so the writer copies a
    batch while it is still in the CPU's cache); small ones in batches of batch_size; the
    bytes written are the same either way."""
    from mxnet_recpack.images.codec import ImageEncoder
    from mxnet_recpack.pipeline.encoder import BATCH_BYTES, RecordEncoder
    rng = np.random.RandomState(3)
    big = cv2.imencode(".jpg", rng.randint(0, 255, (400, 400, 3)).astype(np.uint8),
                       [cv2.IMWRITE_JPEG_QUALITY, 100])[1].tobytes()
    small = cv2.imencode(".jpg", rng.randint(0, 255, (16, 16, 3)).astype(np.uint8))[1].tobytes()
    (tmp_path / "big.jpg").write_bytes(big)
    (tmp_path / "small.jpg").write_bytes(small)
    sizes = {}
    for name in ("big", "small"):
        lst = write_lst(tmp_path / (name + ".lst"), [(k, 0, name + ".jpg") for k in range(40)])
        for decode in (False, True):
            items = ImageList(lst, root=str(tmp_path), decode=decode)
            enc = RecordEncoder(items, keys=items.record_keys, encoder=ImageEncoder(".jpg", 95))
            sizes[name, decode] = enc.batch_size(32)
    assert sizes == {("big", False): max(1, BATCH_BYTES // len(big)), ("big", True): 32,
                     ("small", False): 32, ("small", True): 32}
    assert sizes["big", False] < 32
    rp.im2rec(str(tmp_path / "big.lst"), None, {"root": str(tmp_path), "pass_through": True,
                                                "num_thread": 2}, str(tmp_path / "b"))
    rp.im2rec(str(tmp_path / "big.lst"), None, {"root": str(tmp_path), "pass_through": True,
                                                "batch_size": 1}, str(tmp_path / "one"))
    assert read(tmp_path / "b.rec") == read(tmp_path / "one.rec")
