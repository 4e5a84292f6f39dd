"""Readers agree: JPEGs stored as they are (``--pass-through``) that carry an EXIF orientation.

MXNet's readers disagree on them: ``ImageRecordIter`` and DALI turn them as the tag says,
``mx.image.imdecode`` (Gluon's ``ImageRecordDataset``, InsightFace, GluonCV) does too except in
JPEGs that begin with a JFIF segment. ``RecordDataset(exif=...)`` follows either, checked
against those readers themselves; ``verify`` and ``inspect`` say which files hold such JPEGs.
Real photos (scikit-image's and scikit-learn's), with a camera's EXIF block made by hand."""
import subprocess

import cv2
import numpy as np
import pytest

import mxnet_recpack as rp
from helpers import exif_jpeg, idx_of, recpack_cmd, write_lst
from mxnet_recpack import RecordDataset

ORIENTATIONS = (1, 3, 5, 6, 8)
SIDE = 64  # the photos are 96 x 64; a 64 x 64 centre crop compares any orientation


@pytest.fixture
def oriented(tmp_path, photos):
    """Photos as camera originals (EXIF segment first) and as PIL saves them (JFIF first),
    each orientation, packed with --pass-through; ``(rec, [(layout, orientation, bytes)])``
    in key order."""
    rows, made = [], []
    for k, (layout, o) in enumerate((layout, o) for layout in ("camera", "jfif")
                                    for o in ORIENTATIONS):
        rgb = cv2.resize(photos[(k % 4) + 1][1], (96, 64), interpolation=cv2.INTER_AREA)
        data = exif_jpeg(rgb, o, layout)
        (tmp_path / ("%d.jpg" % k)).write_bytes(data)
        rows.append((k, k, "%d.jpg" % k))
        made.append((layout, o, data))
    write_lst(tmp_path / "o.lst", rows)
    rec = rp.im2rec(str(tmp_path / "o.lst"), None, {"root": str(tmp_path),
                                                    "pass_through": True})
    return rec, made


def _cv2(data, flags=cv2.IMREAD_COLOR):
    return cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), flags), cv2.COLOR_BGR2RGB)


def _close(a, b):
    return a.shape == b.shape and np.abs(a.astype(int) - b.astype(int)).mean() < 1


def _centre(img):
    h, w = img.shape[:2]
    return img[(h - SIDE) // 2:(h - SIDE) // 2 + SIDE, (w - SIDE) // 2:(w - SIDE) // 2 + SIDE]


@pytest.mark.mxnet
def test_exif_follows_mx_image_imdecode_or_image_record_iter(oriented):
    import mxnet as mx
    rec, made = oriented
    modes = {m: RecordDataset(rec, exif=m) for m in (True, False, "mxnet")}
    gluon = mx.gluon.data.vision.ImageRecordDataset(rec)
    it = mx.io.ImageRecordIter(path_imgrec=rec, path_imgidx=idx_of(rec), batch_size=1,
                               data_shape=(3, SIDE, SIDE), preprocess_threads=1)
    record_iter = [b.data[0][0].asnumpy().transpose(1, 2, 0) for b in it]  # centre crops
    assert len(record_iter) == len(made) == len(modes[True])
    for i, (layout, o, data) in enumerate(made):
        imdecode = mx.image.imdecode(data).asnumpy()
        stored = _cv2(data, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
        turned = _cv2(data)
        assert turned.shape[:2] == (stored.shape[:2][::-1] if o >= 5 else stored.shape[:2])
        assert _close(gluon[i][0].asnumpy(), imdecode)  # Gluon's dataset is mx.image.imdecode
        # the readers disagree: ImageRecordIter always turns, mx.image.imdecode not after JFIF
        assert _close(imdecode, stored if layout == "jfif" else turned), (layout, o)
        assert np.abs(record_iter[i] - _centre(turned)).mean() < 1, (layout, o)
        if o != 1:
            assert not _close(stored, turned)
        # and exif= picks which one to follow
        assert _close(modes["mxnet"][i][0], imdecode), (layout, o)
        assert _close(modes[False][i][0], stored), (layout, o)
        assert _close(modes[True][i][0], turned), (layout, o)
        assert np.abs(_centre(modes[True][i][0]) - record_iter[i]).mean() < 1, (layout, o)
    assert RecordDataset(rec).exif is True  # the default follows ImageRecordIter and DALI


@pytest.mark.mxnet
def test_gray_decodes_follow_the_same_rule(oriented):
    import mxnet as mx
    rec, made = oriented
    ds = RecordDataset(rec, exif="mxnet", color=0)
    for i, (layout, o, data) in enumerate(made):
        assert _close(ds[i][0], mx.image.imdecode(data, flag=0).asnumpy()), (layout, o)


@pytest.mark.dali
def test_dali_turns_them_as_exif_true_does(oriented):
    from conftest import _read_with_dali
    rec, made = oriented
    ours = RecordDataset(rec)
    theirs = _read_with_dali(rec)
    assert len(theirs) == len(made)
    for i, ((label, raw, pixels), (layout, o, data)) in enumerate(zip(theirs, made)):
        assert bytes(raw) == data and label == i
        assert pixels.shape == ours[i][0].shape, (layout, o)
        assert np.abs(pixels.astype(int) - ours[i][0]).mean() < 1.5, (layout, o)
        if o != 1:  # what exif=False gives is not what DALI gives
            assert not _close(pixels, RecordDataset(rec, exif=False)[i][0])


def test_verify_and_inspect_name_them(oriented, tmp_path):
    rec, made = oriented
    turned = [k for k, (_, o, _) in enumerate(made) if o != 1]
    for result in (rp.verify(rec), rp.verify(rec, quick=True), rp.verify(rec, num_threads=2)):
        assert result.problems == []
        note = [n for n in result.notes if "EXIF orientation" in n]
        assert len(note) == 1, result.notes
        assert note[0].startswith("8 JPEG(s) carry an EXIF orientation that turns or mirrors "
                                  "them (keys 1, 2, 3, 4, 6, ...)")
        assert "leaves 4 of them as stored (those that begin with a JFIF segment)" in note[0]
    info = rp.inspection.inspect_file(rec)
    assert info["exif_orientation"] == {"jpegs": len(turned), "as_stored_by_imdecode": 4,
                                        "first": turned[:5]}
    out = subprocess.run(recpack_cmd("inspect", rec), capture_output=True, text=True).stdout
    assert "EXIF orientation: 8 JPEG(s) carry one that turns or mirrors them (keys 1, 2, 3, " \
           "4, 6, ...)" in out and "leaves 4 of them as stored" in out
    out = subprocess.run(recpack_cmd("verify", rec), capture_output=True, text=True)
    assert out.returncode == 0 and "EXIF orientation" in out.stdout + out.stderr
    # re-encoded, the images are stored upright: nothing left to disagree on
    rp.rewrite(rec, tmp_path / "upright.rec")
    assert not any("EXIF" in n for n in rp.verify(str(tmp_path / "upright.rec")).notes)
    assert rp.inspection.inspect_file(str(tmp_path / "upright.rec"))["exif_orientation"][
        "jpegs"] == 0
    upright = RecordDataset(str(tmp_path / "upright.rec"), exif=False)
    for i, (_, _, data) in enumerate(made):
        assert upright[i][0].shape == _cv2(data).shape


def test_the_exif_option_is_checked(oriented):
    rec, _ = oriented
    for bad in (1, "yes", "MXNET"):
        with pytest.raises(rp.OptionError, match=r"exif = .* is not valid; expected None, "
                                                 r"True, False or 'mxnet'"):
            RecordDataset(rec, exif=bad)
    assert RecordDataset(rec, exif=None).exif is True
