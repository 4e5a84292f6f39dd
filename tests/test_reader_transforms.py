"""RecordDataset's built-in training transforms (size, crop, scale, ratio, flip; seed and
epoch), its JPEG decoders (simplejpeg beside OpenCV, checked against OpenCV and MXNet), its
float32 labels, and its batched fetch (``__getitems__``) under PyTorch's and Gluon's loaders.

Crops are checked against boxes and resizes computed here from the documented rules, on
lossless PNGs (pixels compare exactly) and on camera-size JPEGs through the reduced DCT decode
(a PSNR bound, as the packer's reduced decode is checked)."""
import glob
import hashlib
import io
import math
import multiprocessing
import os
import pickle

import cv2
import numpy as np
import pytest

import mxnet_recpack as rp
import mxnet_recpack.reader as reader_module
from helpers import exif_jpeg, write_arrays
from mxnet_recpack import RecordDataset, RecordFileWriter
from mxnet_recpack.images import jpeg
from mxnet_recpack.images.crops import center_box, item_rng, random_box
from mxnet_recpack.samples import make_image_folder

LINEAR, AREA = cv2.INTER_LINEAR, cv2.INTER_AREA


def psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return math.inf if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def digest(img):
    return hashlib.sha1(np.ascontiguousarray(img).tobytes()).hexdigest()


def bgr(rgb):
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)


def write_bytes(rec, datas, labels=None):
    """Records holding ``datas`` (encoded images) byte for byte, keys 0, 1, ..."""
    with RecordFileWriter(str(rec)) as w:
        for k, data in enumerate(datas):
            w.write(data, k if labels is None else labels[k], key=k)
    return str(rec)


def cmyk_jpeg(rgb, quality=90):
    """A CMYK JPEG (PIL writes Adobe's inverted CMYK, as Photoshop does)."""
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(rgb).convert("CMYK").save(buf, "JPEG", quality=quality)
    return buf.getvalue()


@pytest.fixture(scope="module")
def pngs(tmp_path_factory, photos):
    """Photos of several shapes (wide, tall, square) stored as PNG: decoded exactly."""
    shapes = [(90, 160), (160, 90), (100, 100), (75, 130), (130, 75), (61, 97)]
    images = [cv2.resize(photos[k][1], (w, h), interpolation=AREA)
              for k, (h, w) in enumerate(shapes)]
    rec = write_arrays(tmp_path_factory.mktemp("pngs") / "p.rec", images,
                       list(range(len(images))), encoding=".png")
    return rec, images


@pytest.fixture(scope="module")
def jpegs(tmp_path_factory, photos):
    """JPEGs of every kind a file holds, byte for byte: OpenCV's 4:2:0, 4:4:4, progressive,
    gray and CMYK encodes of the sample photos, and the JPEG files scikit-image, scikit-learn
    and this package ship (other encoders)."""
    import skimage.data
    import sklearn.datasets
    made = []
    for name, rgb in photos[:6]:
        made += [("q90 " + name, cv2.imencode(".jpg", bgr(rgb), [cv2.IMWRITE_JPEG_QUALITY, 90])
                  [1].tobytes()),
                 ("444 " + name, cv2.imencode(".jpg", bgr(rgb), [
                     cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444])
                  [1].tobytes()),
                 ("progressive " + name, cv2.imencode(".jpg", bgr(rgb), [
                     cv2.IMWRITE_JPEG_PROGRESSIVE, 1])[1].tobytes()),
                 ("gray " + name, cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
                  [1].tobytes()),
                 ("cmyk " + name, cmyk_jpeg(rgb))]
    files = glob.glob(os.path.join(os.path.dirname(skimage.data.__file__), "*.jpg")) + \
        glob.glob(os.path.join(os.path.dirname(sklearn.datasets.__file__), "images", "*.jpg")) + \
        glob.glob(os.path.join(os.path.dirname(rp.__file__), "sample_data", "*.jpg"))
    made += [("file " + os.path.basename(f), open(f, "rb").read()) for f in sorted(files)]
    assert len(files) >= 8
    rec = write_bytes(tmp_path_factory.mktemp("jpegs") / "j.rec", [d for _, d in made])
    return rec, made


@pytest.fixture(scope="module")
def large(tmp_path_factory):
    """Camera-size JPEGs (1800-2200 px): the reduced DCT decode's ground."""
    root = tmp_path_factory.mktemp("large")
    files = make_image_folder(str(root), classes=2, per_class=3, long_side=(1800, 2200),
                              quality=90, seed=8)
    datas = [open(os.path.join(str(root), f), "rb").read() for f in files]
    return write_bytes(root / "l.rec", datas), datas


def decode_rgb(data, flags=cv2.IMREAD_COLOR):
    img = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    return img[:, :, None] if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


@pytest.fixture
def factors(monkeypatch):
    """The DCT scales the reader decodes at, recorded (both decoders)."""
    seen = []
    for name in ("decode_jpeg", "decode_image"):
        real = getattr(reader_module, name)

        def spy(*args, _real=real, **kwargs):
            seen.append(kwargs.get("reduce", 1))
            return _real(*args, **kwargs)
        monkeypatch.setattr(reader_module, name, spy)
    return seen


# ---- geometry ------------------------------------------------------------------------------

def expected_center(h, w, size):
    """Scale to cover ``size`` (the larger of the two ratios), then the middle: the box that
    becomes the output, in the image's pixels (rounded to whole pixels, half up)."""
    out_w, out_h = size
    s = max(out_w / w, out_h / h)
    cw, ch = min(w, int(out_w / s + 0.5)), min(h, int(out_h / s + 0.5))
    return (h - ch) // 2, (w - cw) // 2, ch, cw


def reduction(box, size):
    """The packer's rule: the largest f in 8, 4, 2 that leaves the box at least twice the
    output on both sides at 1/f scale (1: a full decode)."""
    _, _, ch, cw = box
    return next((f for f in (8, 4, 2) if -(-ch // f) >= 2 * size[1] and
                 -(-cw // f) >= 2 * size[0]), 1)


def snapped(box, f, h, w):
    """The box's edges rounded (half up) to multiples of f: the pixels of a 1/f decode."""
    top, left, ch, cw = box
    edges = [int(v / f + 0.5) * f for v in (top, left, top + ch, left + cw)]
    bottom, right = min(h, max(edges[0] + f, edges[2])), min(w, max(edges[1] + f, edges[3]))
    return edges[0], edges[1], bottom - edges[0], right - edges[1]


def cut(img, box):
    top, left, ch, cw = box
    return img[top:top + ch, left:left + cw]


def test_center_box_covers_and_centres():
    for h, w, size in [(300, 400, (224, 224)), (400, 300, (224, 224)), (480, 640, (128, 96)),
                       (480, 640, (96, 128)), (37, 1000, (10, 10)), (1000, 37, (64, 20)),
                       (5, 5, (300, 200)), (224, 224, (224, 224))]:
        top, left, ch, cw = center_box(h, w, size)
        assert (top, left, ch, cw) == expected_center(h, w, size)
        assert ch == h or cw == w                      # the shorter side (for the ratio) whole
        ratio = size[0] / size[1]
        assert abs(cw / ch - ratio) <= ratio / min(ch, cw)  # within the rounding of a side
        assert abs((w - cw - left) - left) <= 1 and abs((h - ch - top) - top) <= 1


def test_center_crop_pixels(pngs):
    rec, images = pngs
    for size in [(64, 48), (48, 64), (50, 50), (200, 120)]:  # shrinking and enlarging
        ds = RecordDataset(rec, size=size)
        for i, full in enumerate(images):
            got, label = ds[i]
            top, left, ch, cw = expected_center(*full.shape[:2], size)
            expect = cv2.resize(full[top:top + ch, left:left + cw], size, interpolation=LINEAR)
            assert got.shape == (size[1], size[0], 3) and label == i
            np.testing.assert_array_equal(got, expect)


def test_random_boxes_follow_random_resized_crop():
    rng = np.random.default_rng(0)
    h, w = 300, 400
    boxes = np.array([random_box(h, w, rng) for _ in range(3000)])
    top, left, ch, cw = boxes.T
    assert (top >= 0).all() and (left >= 0).all() and (top + ch <= h).all() and \
        (left + cw <= w).all() and (ch > 0).all() and (cw > 0).all()
    area = ch * cw / (h * w)
    aspect = cw / ch
    slack = 2.5 / ch + 2.5 / cw  # whole pixels: each side rounded by up to half a pixel
    assert (area >= 0.08 * (1 - slack)).all() and (area <= 1).all()
    assert (aspect >= 0.75 * (1 - slack)).all() and (aspect <= 4 / 3 * (1 + slack)).all()
    assert area.min() < 0.1 and area.max() > 0.95         # the whole range is drawn
    assert (np.log(aspect) < np.log(0.8)).any() and (np.log(aspect) > np.log(1.25)).any()
    assert (top == 0).any() and (left == 0).any() and (top + ch == h).any() and \
        (left + cw == w).any()                              # and every position
    # boxes that never fit: the centred whole image, its ratio clamped into `ratio`
    assert random_box(10, 1000, rng) == (0, (1000 - 13) // 2, 10, 13)
    assert random_box(1000, 10, rng) == ((1000 - 13) // 2, 0, 13, 10)
    assert random_box(100, 120, rng, scale=(1, 1), ratio=(1.2, 1.2)) == (0, 0, 100, 120)
    # the same generator state, the same box
    assert random_box(h, w, item_rng(1, 2, 3)) == random_box(h, w, item_rng(1, 2, 3))


def test_random_crop_and_flip_pixels(pngs):
    rec, images = pngs
    for flip in (False, True):
        ds = RecordDataset(rec, size=(40, 30), crop="random", flip=flip, seed=7)
        flips = []
        for i, full in enumerate(images):
            rng = item_rng(7, 0, i)  # drawn in the documented order: the box, then the flip
            top, left, ch, cw = random_box(*full.shape[:2], rng)
            expect = cv2.resize(full[top:top + ch, left:left + cw], (40, 30),
                                interpolation=LINEAR)
            if flip and rng.random() < 0.5:
                expect = expect[:, ::-1]
                flips.append(i)
            np.testing.assert_array_equal(ds[i][0], expect)
        assert not flip or 0 < len(flips) < len(images)


def test_flip_alone_and_with_the_center_crop(pngs):
    rec, images = pngs
    alone = RecordDataset(rec, flip=True, seed=1)
    cropped = RecordDataset(rec, size=32, flip=True, seed=1)
    plain = RecordDataset(rec, size=32)
    seen = set()
    for i, full in enumerate(images):
        mirrored = item_rng(1, 0, i).random() < 0.5
        seen.add(mirrored)
        np.testing.assert_array_equal(alone[i][0], full[:, ::-1] if mirrored else full)
        np.testing.assert_array_equal(cropped[i][0],
                                      plain[i][0][:, ::-1] if mirrored else plain[i][0])
    assert seen == {True, False}


# ---- the reduced DCT decode ----------------------------------------------------------------

@pytest.mark.parametrize("crop", ["center", "random"])
@pytest.mark.parametrize("decoder", ["opencv", "simplejpeg"])
def test_reduced_decode_is_as_good_as_a_full_decode(large, crop, decoder, factors):
    """Against a full decode cut to the same box and area-resized (the ideal): area
    interpolation after the reduced decode is within 35 dB of it, linear at least as close as
    linear after a full decode."""
    rec, datas = large
    size = (224, 160)
    for interpolation in (AREA, LINEAR):
        ds = RecordDataset(rec, size=size, crop=crop, seed=2, interpolation=interpolation,
                           decoder=decoder)
        for i, data in enumerate(datas):
            full = decode_rgb(data)
            h, w = full.shape[:2]
            box = (random_box(h, w, item_rng(2, 0, i)) if crop == "random" else
                   expected_center(h, w, size))
            f = reduction(box, size)
            box = snapped(box, f, h, w)
            ideal = cv2.resize(cut(full, box), size, interpolation=AREA)
            del factors[:]
            got = ds[i][0]
            assert factors == [f]  # one decode, at the packer's margin of two
            assert got.shape == (160, 224, 3)
            if interpolation == AREA:
                assert psnr(got, ideal) >= 35, (crop, i, f)
            else:
                plain = cv2.resize(cut(full, box), size, interpolation=LINEAR)
                assert psnr(got, ideal) >= psnr(plain, ideal) - 0.5, (crop, i, f)
    ds = RecordDataset(rec, size=size, crop=crop, seed=2, decoder=decoder)
    del factors[:]
    for i in range(len(ds)):
        ds[i]
    assert set(factors) & {2, 4}, factors  # the fast path is taken


def test_the_reduced_decode_follows_exif_turns(photos, tmp_path, factors):
    """The crop is planned on the turned size: a quarter-turned JPEG is decoded reduced and
    cut as the full decode would be, by either decoder."""
    rgb = cv2.resize(photos[2][1], (900, 600), interpolation=AREA)
    datas = [exif_jpeg(rgb, o, layout) for o in (1, 3, 6, 8, 5) for layout in ("camera",
                                                                              "jfif")]
    rec = write_bytes(tmp_path / "o.rec", datas)
    for exif in (True, False, "mxnet"):
        ours = {d: RecordDataset(rec, size=(96, 64), exif=exif, decoder=d,
                                 interpolation=AREA) for d in ("opencv", "simplejpeg")}
        rand = {d: RecordDataset(rec, size=(64, 96), crop="random", seed=4, exif=exif,
                                 decoder=d, interpolation=AREA) for d in ("opencv",
                                                                         "simplejpeg")}
        full = RecordDataset(rec, exif=exif, decoder="opencv")
        for i in range(len(datas)):
            whole = full[i][0]
            h, w = whole.shape[:2]
            del factors[:]
            a, b = ours["opencv"][i][0], ours["simplejpeg"][i][0]
            box = expected_center(h, w, (96, 64))
            f = reduction(box, (96, 64))
            assert factors == [f, f] and f == (4 if (h, w) == (600, 900) else 2), factors
            np.testing.assert_array_equal(a, b)
            box = snapped(box, f, h, w)
            assert psnr(a, cv2.resize(cut(whole, box), (96, 64), interpolation=AREA)) >= 35
            box = random_box(h, w, item_rng(4, 0, i))
            box = snapped(box, reduction(box, (64, 96)), h, w)
            r1, r2 = rand["opencv"][i][0], rand["simplejpeg"][i][0]
            np.testing.assert_array_equal(r1, r2)
            assert psnr(r1, cv2.resize(cut(whole, box), (64, 96), interpolation=AREA)) >= 35


# ---- randomness: seed, epoch, position -----------------------------------------------------

def _digests(args):
    ds, positions = args
    return [(i, digest(ds[i][0])) for i in positions]


def test_crops_are_a_function_of_seed_epoch_and_position(jpegs):
    rec, made = jpegs
    ds = RecordDataset(rec, size=(48, 40), crop="random", flip=True, seed=3)
    n = len(ds)
    expected = [digest(ds[i][0]) for i in range(n)]
    assert [digest(ds[i][0]) for i in range(n)] == expected       # again: the same
    # any number of workers, any order, fresh processes: the same pixels
    for workers, chunk in ((1, n), (2, 1), (3, 4)):
        jobs = [(ds, list(range(n))[k:k + chunk][::-1]) for k in range(0, n, chunk)]
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            got = dict(pair for part in pool.map(_digests, jobs) for pair in part)
        assert [got[i] for i in range(n)] == expected
    assert [digest(x[0]) for x in ds.__getitems__(list(range(n))[::-1])] == expected[::-1]
    ds.set_epoch(1)
    other = [digest(ds[i][0]) for i in range(n)]
    assert sum(a != b for a, b in zip(other, expected)) >= n - 2  # another epoch, other crops
    ds.set_epoch(0)
    assert [digest(ds[i][0]) for i in range(n)] == expected
    again = RecordDataset(rec, size=(48, 40), crop="random", flip=True, seed=3)
    assert [digest(again[i][0]) for i in range(n)] == expected    # another instance, run
    reseeded = RecordDataset(rec, size=(48, 40), crop="random", flip=True, seed=4)
    assert sum(digest(reseeded[i][0]) != e for i, e in enumerate(expected)) >= n - 2
    copy = pickle.loads(pickle.dumps(ds))
    assert copy.seed == 3 and [digest(copy[i][0]) for i in range(n)] == expected


def _draws(ds, queue):
    queue.put([digest(ds[0][0]) for _ in range(6)])


def test_without_a_seed_every_process_draws_its_own(pngs):
    """No seed: fresh randomness in each process, never the parent's generator copied into
    forked workers (the classic every-worker-crops-alike bug) nor pickled into spawned ones."""
    rec, _ = pngs
    ds = RecordDataset(rec, size=24, crop="random", flip=True)
    mine = [digest(ds[0][0]) for _ in range(6)]  # the parent's generator exists now
    assert len(set(mine)) > 1
    assert pickle.loads(pickle.dumps(ds))._rng is None
    for method in ("fork", "spawn"):
        ctx = multiprocessing.get_context(method)
        queue = ctx.Queue()
        procs = [ctx.Process(target=_draws, args=(ds, queue)) for _ in range(2)]
        for p in procs:
            p.start()
        a, b = queue.get(timeout=120), queue.get(timeout=120)
        for p in procs:
            p.join(60)
        assert a != b and a != mine and b != mine, method


# ---- decoders ------------------------------------------------------------------------------

def test_simplejpeg_gives_opencvs_pixels(jpegs, monkeypatch):
    """Measured on these JPEGs (OpenCV 4.11 and 5.1, simplejpeg 1.9): not one pixel differs,
    full size, at 1/2, 1/4 and 1/8 scale, colour and gray."""
    rec, made = jpegs
    calls = []
    real = jpeg.simplejpeg_module().decode_jpeg

    def counted(*args, **kwargs):
        calls.append(kwargs.get("min_factor", 1))
        return real(*args, **kwargs)
    monkeypatch.setattr(jpeg.simplejpeg_module(), "decode_jpeg", counted)
    for options in ({}, {"color": 1}, {"color": 0}, {"size": 40}, {"size": (30, 20),
                                                                   "color": 0}):
        fast = RecordDataset(rec, decoder="simplejpeg", **options)
        slow = RecordDataset(rec, decoder="opencv", **options)
        for i, (name, _) in enumerate(made):
            a, b = fast[i][0], slow[i][0]
            assert a.dtype == np.uint8 and a.shape == b.shape, (name, options)
            np.testing.assert_array_equal(a, b, err_msg="%s %s" % (name, options))
    assert len(calls) == 5 * len(made) and {2, 4, 8} <= set(calls)  # simplejpeg did decode
    for i, (name, data) in enumerate(made):
        if name.startswith(("q90", "444", "progressive", "file")):
            np.testing.assert_array_equal(RecordDataset(rec, decoder="simplejpeg")[i][0],
                                          decode_rgb(data))


def test_gray_stays_gray(jpegs, large, photos, tmp_path):
    rec, made = jpegs
    gray = [i for i, (name, _) in enumerate(made) if name.startswith("gray")]
    for decoder in ("opencv", "simplejpeg"):
        for options in ({}, {"size": 32}, {"size": (40, 24), "crop": "random", "seed": 0}):
            ds = RecordDataset(rec, decoder=decoder, **options)
            for i in gray:
                img = ds[i][0]
                assert img.ndim == 3 and img.shape[2] == 1, (decoder, options)
            colour = RecordDataset(rec, decoder=decoder, color=1, **options)[gray[0]][0]
            assert colour.shape[2] == 3 and (colour[..., 0] == colour[..., 2]).all()
    big = cv2.cvtColor(cv2.resize(photos[3][1], (1600, 1200)), cv2.COLOR_RGB2GRAY)
    data = cv2.imencode(".jpg", big)[1].tobytes()
    one = write_bytes(tmp_path / "g.rec", [data])
    full = decode_rgb(data, cv2.IMREAD_GRAYSCALE)[..., 0]
    box = snapped(expected_center(1200, 1600, (64, 64)), 8, 1200, 1600)
    ideal = cv2.resize(cut(full, box), (64, 64), interpolation=AREA)
    for decoder in ("opencv", "simplejpeg"):
        small = RecordDataset(one, size=64, decoder=decoder, interpolation=AREA)[0][0]
        assert small.shape == (64, 64, 1)  # decoded gray at 1/8
        assert psnr(small[..., 0], ideal) >= 35


def test_cmyk_jpegs_read_as_opencv_reads_them(jpegs):
    rec, made = jpegs
    cmyk = [i for i, (name, _) in enumerate(made) if name.startswith("cmyk")]
    assert cmyk
    for decoder in ("opencv", "simplejpeg"):
        ds = RecordDataset(rec, decoder=decoder)
        for i in cmyk:
            img = ds[i][0]
            np.testing.assert_array_equal(img, decode_rgb(made[i][1]))
            assert img.shape[2] == 3


@pytest.mark.parametrize("layout", ["camera", "jfif"])
def test_every_exif_orientation_reads_alike(photos, tmp_path, layout):
    rgb = cv2.resize(photos[1][1], (96, 64), interpolation=AREA)
    datas = [exif_jpeg(rgb, o, layout) for o in range(1, 9)]
    rec = write_bytes(tmp_path / "o.rec", datas)
    for exif in (True, False, "mxnet"):
        for options in ({}, {"color": 0}, {"size": (40, 30), "crop": "random", "seed": 1}):
            fast = RecordDataset(rec, exif=exif, decoder="simplejpeg", **options)
            slow = RecordDataset(rec, exif=exif, decoder="opencv", **options)
            for i in range(8):
                np.testing.assert_array_equal(fast[i][0], slow[i][0],
                                              err_msg="orientation %d %s" % (i + 1, exif))
    turned = RecordDataset(rec, exif=True, decoder="simplejpeg")
    for i, data in enumerate(datas):  # and it is OpenCV's own turn
        np.testing.assert_array_equal(turned[i][0], decode_rgb(data))
        assert turned[i][0].shape[:2] == ((96, 64) if i + 1 >= 5 else (64, 96))


def test_damaged_jpegs_read_as_opencv_reads_them(photos, tmp_path):
    """What simplejpeg declines (it is strict: junk, a damaged stream, a cut file) OpenCV
    decodes as it always did, warnings and all, or refuses."""
    data = cv2.imencode(".jpg", bgr(photos[0][1]))[1].tobytes()
    flipped = bytearray(data)
    flipped[len(data) // 2:len(data) // 2 + 2] = b"\xff\xd3"  # a stray restart marker
    junk = data[:-2] + b"\0" * 50 + data[-2:]
    cut_short = data[:len(data) * 2 // 3]
    rec = write_bytes(tmp_path / "d.rec", [bytes(flipped), junk, cut_short,
                                           data[:200] + b"\0" * 9])
    fast, slow = RecordDataset(rec, decoder="simplejpeg"), RecordDataset(rec, decoder="opencv")
    declined = 0
    for i in range(4):
        try:
            expect = slow[i][0]
        except rp.BadImageError as exc:
            with pytest.raises(rp.BadImageError, match=r"d\.rec, byte offset \d+ \(key %d\): "
                                                       r"the image does not decode" % i):
                fast[i]
            assert "key %d" % i in str(exc)
            continue
        np.testing.assert_array_equal(fast[i][0], expect)
        try:
            jpeg.simplejpeg_module().decode_jpeg(fast.records.record(i)[2])
        except ValueError:
            declined += 1
    assert declined == 2  # the stray marker and the junk: OpenCV's pixels all the same


def test_decoder_option_and_a_missing_simplejpeg(pngs, jpegs, monkeypatch):
    rec, made = jpegs
    assert RecordDataset(rec).decoder == "simplejpeg"  # 'auto' where it imports
    ours = RecordDataset(rec, decoder="simplejpeg")[0][0]
    monkeypatch.setattr(jpeg, "_MODULE", False)       # as where it is not installed
    assert RecordDataset(rec).decoder == "opencv"
    np.testing.assert_array_equal(RecordDataset(rec)[0][0], ours)
    with pytest.raises(rp.OptionError, match=r"decoder='simplejpeg' needs the simplejpeg "
                                             r"package.*mxnet_recpack\[simplejpeg\]"):
        RecordDataset(rec, decoder="simplejpeg")
    with pytest.raises(rp.OptionError, match=r"decoder = 'pil' is not valid; expected "
                                             r"'auto', 'opencv' or 'simplejpeg'"):
        RecordDataset(rec, decoder="pil")


@pytest.mark.mxnet
def test_pixels_are_mx_image_imdecodes(jpegs):
    """MXNet's own decoder (its bundled OpenCV): measured, not one pixel differs either."""
    import mxnet as mx
    rec, made = jpegs
    for decoder in ("simplejpeg", "opencv"):
        ds = RecordDataset(rec, decoder=decoder, exif="mxnet")
        for i, (name, data) in enumerate(made):
            theirs = mx.image.imdecode(data, flag=1, to_rgb=1).asnumpy()
            np.testing.assert_array_equal(RecordDataset(rec, decoder=decoder, color=1)[i][0],
                                          theirs, err_msg=name)
            if not name.startswith("gray"):
                np.testing.assert_array_equal(ds[i][0], theirs, err_msg=name)


# ---- items: labels, batches, user transforms, loaders --------------------------------------

def test_labels_are_float32(tmp_path, photos):
    rec = write_arrays(tmp_path / "l.rec", [photos[0][1][:20, :20]] * 3,
                       [7, 0.1, [1.5, 2, 3]], encoding=".png")
    ds = RecordDataset(rec, size=8)
    scalar, tenth, vector = (ds[i][1] for i in range(3))
    assert type(scalar) is np.float32 and scalar == 7
    assert type(tenth) is np.float32 and tenth == np.float32(0.1)  # as stored, not widened
    assert vector.dtype == np.float32 and vector.tolist() == [1.5, 2, 3]
    assert [type(label) for _, label in ds.__getitems__([0, 1])] == [np.float32] * 2


def test_getitems_is_the_items(pngs):
    rec, images = pngs
    ds = RecordDataset(rec, size=20, crop="random", seed=5)
    batch = ds.__getitems__([3, 0, -1, 3])
    for (image, label), i in zip(batch, [3, 0, len(images) - 1, 3]):
        np.testing.assert_array_equal(image, ds[i][0])
        assert label == ds[i][1] == i
    assert ds.__getitems__([]) == []
    with pytest.raises(IndexError, match="position 6 is out of range for 6 images"):
        ds.__getitems__([0, 6])


class Halve:
    """A user transform (numpy in, numpy out), picklable."""

    def __call__(self, img):
        return img[::2, ::2]


def test_a_user_transform_runs_after_the_crop(pngs, tmp_path):
    rec, images = pngs
    ds = RecordDataset(rec, size=(40, 20), transform=Halve())
    plain = RecordDataset(rec, size=(40, 20))
    np.testing.assert_array_equal(ds[0][0], plain[0][0][::2, ::2])
    arrays = rp.RecordFileWriter(str(tmp_path / "n.rec"), encoding=".npy")
    with arrays as w:
        w.write(np.arange(60 * 80 * 3, dtype=np.float32).reshape(60, 80, 3), 1, key=0)
    tensor = RecordDataset(str(tmp_path / "n.rec"), size=(20, 20))[0][0]
    assert tensor.shape == (20, 20, 3) and tensor.dtype == np.float32


def test_options_are_checked(pngs):
    rec, _ = pngs
    bad = [({"size": (0, 10)}, r"size = \(0, 10\) is not valid; expected \(width, height\)"),
           ({"size": "224"}, r"size = '224' is not valid"),
           ({"size": 8, "crop": "middle"}, r"crop = 'middle' is not valid; expected 'center' "
                                           r"or 'random'"),
           ({"size": 8, "scale": (0.5, 1)}, r"scale and ratio choose crop='random''s boxes"),
           ({"size": 8, "crop": "random", "scale": (0.5, 2)},
            r"scale = \(0.5, 2\) is not valid; expected a pair \(low, high\) with 0 < low <= "
            r"high <= 1"),
           ({"size": 8, "crop": "random", "ratio": (2, 1)}, r"ratio = \(2, 1\) is not valid"),
           ({"size": 8, "flip": 1}, r"flip = 1 is not valid; expected True or False"),
           ({"size": 8, "interpolation": 7}, r"interpolation = 7 is not valid; expected an "
                                             r"OpenCV code: 0 nearest, 1 linear"),
           ({"crop": "random"}, r"crop only applies with size=\(width, height\), the output "
                                r"size: give size too"),
           ({"scale": (0.2, 1), "interpolation": 3}, r"scale, interpolation only apply with"),
           ({"size": 8, "seed": -1}, r"seed = -1 is not valid; expected None or an integer "
                                     r">= 0"),
           ({"size": 8, "seed": 1.5}, r"seed = 1.5 is not valid")]
    for options, message in bad:
        with pytest.raises(rp.OptionError, match=message):
            RecordDataset(rec, **options)
    ds = RecordDataset(rec, size=8, crop="random", seed=0)
    for epoch in (-1, 1.0, True):
        with pytest.raises(rp.OptionError, match=r"epoch = .* is not valid; expected an "
                                                 r"integer >= 0"):
            ds.set_epoch(epoch)


@pytest.mark.torch
@pytest.mark.parametrize("workers", [0, 2])
def test_torch_default_collate(pngs, workers):
    import torch
    from torch.utils.data import DataLoader

    class Counted(RecordDataset):
        batches = 0

        def __getitems__(self, positions):
            Counted.batches += 1
            return super().__getitems__(positions)
    rec, images = pngs
    ds = Counted(rec, size=(24, 16), crop="random", flip=True, seed=9)
    loader = DataLoader(ds, batch_size=4, num_workers=workers)
    batches = list(loader)
    images_, labels = torch.cat([b[0] for b in batches]), torch.cat([b[1] for b in batches])
    assert images_.dtype == torch.uint8 and images_.shape == (len(images), 16, 24, 3)
    assert labels.dtype == torch.float32 and labels.tolist() == list(range(len(images)))
    for i in range(len(images)):  # whichever worker cropped it: the dataset's own crop
        np.testing.assert_array_equal(images_[i].numpy(), ds[i][0])
    if workers == 0:
        assert Counted.batches == 2  # one batched fetch per batch, not one call per item


@pytest.mark.mxnet
def test_gluon_dataloader_gets_float32_labels(pngs):
    from mxnet.gluon.data import DataLoader
    rec, images = pngs
    ds = RecordDataset(rec, size=16, crop="random", seed=1)
    for workers in (0, 2):
        batches = list(DataLoader(ds, batch_size=4, num_workers=workers))
        labels = np.concatenate([b[1].asnumpy() for b in batches])
        assert labels.dtype == np.float32 and labels.tolist() == list(range(len(images)))
        pixels = np.concatenate([b[0].asnumpy() for b in batches])
        np.testing.assert_array_equal(pixels, np.stack([ds[i][0] for i in range(len(ds))]))
