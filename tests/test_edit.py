"""Operations on existing files: merge, split, shuffle, filter, relabel, rewrite. Every output is
read back by MXNet's own readers (MXIndexedRecordIO, ImageRecordIter, ImageRecordDataset; DALI
where MXNet is not installed) and compared byte for byte with the input records; every input is
byte-identical afterwards."""
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

import mxnet_recpack as rp
from helpers import digest, idx_of, im2rec_script, read, recpack_cmd, write_arrays
from mxnet_recpack import RecordFileWriter
from mxnet_recpack.errors import DuplicateKeyError, OptionError


def noise(n, seed, size=16):
    rng = np.random.RandomState(seed)
    return [rng.randint(0, 255, (size, size, 3)).astype(np.uint8) for _ in range(n)]


def payloads(rec):
    """``{key: payload}`` as MXNet's MXIndexedRecordIO reads them (file order kept)."""
    import mxnet as mx
    r = mx.recordio.MXIndexedRecordIO(idx_of(rec), str(rec), "r")
    out = {k: r.read_idx(k) for k in r.keys}
    r.close()
    return out


def mx_labels(rec, shape=(3, 16, 16), label_width=1):
    """Labels in file order as ImageRecordIter reads them (decoding every image)."""
    import mxnet as mx
    it = mx.io.ImageRecordIter(path_imgrec=str(rec), path_imgidx=idx_of(rec), data_shape=shape,
                               batch_size=1, label_width=label_width, preprocess_threads=1)
    return [b.label[0].asnumpy()[0].tolist() for b in it]


@pytest.fixture
def two_files(tmp_path):
    a = write_arrays(tmp_path / "a.rec", noise(6, 1), [0, 1, 2, 0, 1, 2], encoding=".png")
    with RecordFileWriter(str(tmp_path / "b.rec"), encoding=".png") as w:
        for i, img in enumerate(noise(4, 2)):
            w.write(img, [float(i), 7.0], key=2000 + i)  # vector labels, keys of their own
    return a, str(tmp_path / "b.rec")


def test_operations_read_back_by_a_reader_that_is_not_ours(tmp_path, real_reader):
    rec = write_arrays(tmp_path / "in.rec", noise(8, 3), [0, 1, 2, 3] * 2, encoding=".png")
    before = digest(rec, idx_of(rec))
    rp.merge(tmp_path / "m.rec", [rec, rec], renumber=True)
    rp.shuffle(rec, tmp_path / "s.rec", seed=5)
    rp.filter_records(rec, tmp_path / "f.rec", labels=[1, 3])
    rp.relabel(rec, tmp_path / "r.rec", mapping={0: 9, 1: 8, 2: 7, 3: 6})
    rp.split(rec, tmp_path / "p", nsplit=3)
    original = real_reader(rec)
    assert len(real_reader(tmp_path / "m.rec")) == 16
    assert sorted(r[1] for r in real_reader(tmp_path / "s.rec")) == sorted(r[1] for r in original)
    assert [r[0] for r in real_reader(tmp_path / "f.rec")] == [1.0, 3.0, 1.0, 3.0]
    assert [r[0] for r in real_reader(tmp_path / "r.rec")] == [9.0, 8.0, 7.0, 6.0] * 2
    assert [r[1] for r in real_reader(tmp_path / "r.rec")] == [r[1] for r in original]
    parts = [real_reader(tmp_path / ("p.part%03d.rec" % k)) for k in range(3)]
    assert [r[1] for part in parts for r in part] == [r[1] for r in original]
    assert digest(rec, idx_of(rec)) == before


@pytest.mark.mxnet
def test_merge_keeps_keys_and_bytes_and_reads_an_im2rec_py_file(tmp_path, two_files,
                                                                 image_folder):
    import shutil
    root, lst, _ = image_folder
    prefix = str(tmp_path / "ref")
    shutil.copy(lst, prefix + ".lst")
    subprocess.run([sys.executable, im2rec_script(), "--pass-through", prefix, root],
                   check=True, capture_output=True)
    a, b = two_files
    before = digest(a, b, prefix + ".rec")
    ref = payloads(prefix + ".rec")
    first = min(ref)
    # a key in two inputs: refused up front, naming it and the files
    shutil.copy(prefix + ".rec", tmp_path / "copy.rec")
    shutil.copy(prefix + ".idx", tmp_path / "copy.idx")
    with pytest.raises(DuplicateKeyError, match=r"key %d in .*ref\.rec, .*copy\.rec" % first):
        rp.merge(tmp_path / "x.rec", [prefix + ".rec", tmp_path / "copy.rec"])
    assert not os.path.exists(tmp_path / "x.rec")
    rp.merge(tmp_path / "all.rec", [prefix + ".rec", b])
    merged = payloads(tmp_path / "all.rec")
    assert list(merged) == list(ref) + [2000, 2001, 2002, 2003]
    assert all(merged[k] == ref[k] for k in ref)
    assert [merged[k] for k in (2000, 2001, 2002, 2003)] == list(payloads(b).values())
    assert digest(a, b, prefix + ".rec") == before
    assert rp.verify(str(tmp_path / "all.rec")).problems == []


@pytest.mark.mxnet
def test_merge_renumber_writes_the_mapping_and_new_header_ids(tmp_path, two_files):
    import mxnet as mx
    a, b = two_files
    out = tmp_path / "r.rec"
    rp.merge(out, [a, b, a], renumber=True)
    merged = payloads(out)
    assert list(merged) == list(range(16))
    ids = [mx.recordio.unpack(p)[0].id for p in merged.values()]
    assert ids == list(range(16))
    lines = (tmp_path / "r.keys.tsv").read_text().splitlines()
    assert lines[0] == "input\told_key\tnew_key"
    assert lines[7] == "%s\t2000\t6" % b and lines[16] == "%s\t5\t15" % a
    # apart from the id, every byte of every record is the input's
    src = list(payloads(a).values()) + list(payloads(b).values()) + list(payloads(a).values())
    assert [p[:8] + p[16:] for p in merged.values()] == [p[:8] + p[16:] for p in src]
    ds = mx.gluon.data.vision.ImageRecordDataset(str(out))
    assert len(ds) == 16 and ds[15][1] == 2.0


def test_an_output_that_is_an_input_is_refused(tmp_path, two_files):
    a, b = two_files
    before = digest(a, idx_of(a))
    for call in (lambda: rp.merge(a, [a, b], renumber=True),
                 lambda: rp.shuffle(a, a), lambda: rp.filter_records(a, a, labels=[0]),
                 lambda: rp.relabel(a, a, mapping={0: 1, 1: 1, 2: 1}),
                 lambda: rp.rewrite(a, a, resize=8)):
        with pytest.raises(OptionError, match="is also an input"):
            call()
    assert digest(a, idx_of(a)) == before


@pytest.mark.mxnet
def test_split_by_ratio_matches_im2rec_py_list_membership(tmp_path, image_folder):
    root, _, _ = image_folder
    # the file holds the images in im2rec.py's unshuffled list order ...
    subprocess.run([sys.executable, im2rec_script(), "--list", "--recursive", "--no-shuffle",
                    str(tmp_path / "plain"), root], check=True, capture_output=True)
    subprocess.run([sys.executable, im2rec_script(), "--pass-through",
                    str(tmp_path / "plain"), root], check=True, capture_output=True)
    # ... and im2rec.py --list cuts that list (shuffled with its seed 100) into three
    subprocess.run([sys.executable, im2rec_script(), "--list", "--recursive", "--train-ratio",
                    "0.6", "--test-ratio", "0.2", str(tmp_path / "cut"), root], check=True,
                   capture_output=True)
    rec = str(tmp_path / "plain.rec")
    before = digest(rec, idx_of(rec))
    summaries = rp.split(rec, tmp_path / "out", train_ratio=0.6, test_ratio=0.2)
    assert [os.path.basename(s.path) for s in summaries] == [
        "out_test.rec", "out_val.rec", "out_train.rec"]
    path_of = {int(line.split("\t")[0]): line.split("\t")[-1] for line in
               (tmp_path / "plain.lst").read_text().splitlines()}
    src = payloads(rec)
    seen = []
    for part in ("train", "val", "test"):
        got = payloads(tmp_path / ("out_%s.rec" % part))
        expected = {line.split("\t")[-1] for line in
                    (tmp_path / ("cut_%s.lst" % part)).read_text().splitlines()}
        assert {path_of[k] for k in got} == expected
        assert list(got) == sorted(got, key=list(src).index)  # input order kept
        assert all(got[k] == src[k] for k in got)
        seen += list(got)
    assert sorted(seen) == sorted(src)  # disjoint and covering
    assert digest(rec, idx_of(rec)) == before


@pytest.mark.mxnet
def test_split_into_parts_and_by_keys_files(tmp_path, two_files):
    a, _ = two_files
    src = payloads(a)
    rp.split(a, tmp_path / "n", nsplit=4)
    parts = [payloads(tmp_path / ("n.part%03d.rec" % k)) for k in range(4)]
    assert [len(p) for p in parts] == [1, 2, 1, 2]
    assert [v for p in parts for v in p.values()] == list(src.values())
    (tmp_path / "val.txt").write_text("4\n1\n")
    (tmp_path / "test.lst").write_text("0\t0.0\tx.jpg\n")
    rp.split(a, tmp_path / "k", keys_files=[tmp_path / "val.txt", tmp_path / "test.lst"])
    assert list(payloads(tmp_path / "k_val.rec")) == [1, 4]
    assert list(payloads(tmp_path / "k_test.rec")) == [0]
    assert list(payloads(tmp_path / "k_rest.rec")) == [2, 3, 5]
    (tmp_path / "bad.txt").write_text("1\n99\n")
    with pytest.raises(OptionError, match="99"):
        rp.split(a, tmp_path / "z", keys_files=[tmp_path / "bad.txt"])
    (tmp_path / "again.txt").write_text("1\n")
    with pytest.raises(OptionError, match="must not overlap"):
        rp.split(a, tmp_path / "z", keys_files=[tmp_path / "val.txt", tmp_path / "again.txt"])
    assert not list(tmp_path.glob("z*"))


@pytest.mark.mxnet
def test_shuffle_keeps_the_multiset_and_is_deterministic(tmp_path, two_files):
    a, _ = two_files
    rp.merge(tmp_path / "m.rec", [a, a], renumber=True)
    src = payloads(tmp_path / "m.rec")
    rp.shuffle(tmp_path / "m.rec", tmp_path / "s1.rec", seed=1)
    rp.shuffle(tmp_path / "m.rec", tmp_path / "s2.rec", seed=1)
    rp.shuffle(tmp_path / "m.rec", tmp_path / "s3.rec", seed=2)
    s1 = payloads(tmp_path / "s1.rec")
    assert s1 == src and list(s1) != list(src)  # same key -> bytes, another order
    assert read(tmp_path / "s1.rec") == read(tmp_path / "s2.rec")
    assert read(tmp_path / "s1.rec") != read(tmp_path / "s3.rec")
    import mxnet as mx
    it = mx.io.ImageRecordIter(path_imgrec=str(tmp_path / "s1.rec"), data_shape=(3, 16, 16),
                               batch_size=12, label_width=1)
    assert sum(12 - batch.pad for batch in it) == 12


@pytest.mark.mxnet
def test_filter_by_keys_labels_and_what_verify_flags(tmp_path, two_files):
    a, _ = two_files
    rec = str(tmp_path / "d.rec")
    ok, good = cv2.imencode(".jpg", noise(1, 4, 32)[0])
    broken = good.tobytes()[:len(good) // 2]
    with RecordFileWriter(rec) as w:
        for k in range(4):
            w.write(good.tobytes() if k != 2 else broken, float(k % 2), key=k)
    (tmp_path / "keys.txt").write_text("# wanted\n0\n3\n5\n")
    rp.filter_records(a, tmp_path / "k.rec", keep_keys=tmp_path / "keys.txt")
    assert list(payloads(tmp_path / "k.rec")) == [0, 3, 5]
    rp.filter_records(a, tmp_path / "l.rec", drop_labels=[1], drop_keys=[0])
    assert list(payloads(tmp_path / "l.rec")) == [2, 3, 5]
    assert mx_labels(tmp_path / "l.rec") == [2.0, 0.0, 2.0]
    assert rp.verify(rec).problems
    rp.filter_records(rec, tmp_path / "v.rec", drop_flagged=True)
    assert list(payloads(tmp_path / "v.rec")) == [0, 1, 3]
    assert rp.verify(str(tmp_path / "v.rec")).problems == []
    with pytest.raises(OptionError, match="no record"):
        rp.filter_records(a, tmp_path / "none.rec", labels=[42])


@pytest.mark.mxnet
def test_relabel_from_a_list_or_a_mapping_keeps_image_bytes(tmp_path, two_files):
    import mxnet as mx
    a, _ = two_files
    lst = tmp_path / "new.lst"
    lst.write_text("".join("%d\t%d\tignored.jpg\n" % (k, 10 + k) for k in range(5)))
    with pytest.raises(OptionError, match=r"no label for 1 record\(s\) \(the keys 5\)"):
        rp.relabel(a, tmp_path / "r.rec", list_file=lst)
    assert not os.path.exists(tmp_path / "r.rec")
    rp.relabel(a, tmp_path / "r.rec", list_file=lst, keep_missing=True)
    assert mx_labels(tmp_path / "r.rec") == [10.0, 11.0, 12.0, 13.0, 14.0, 2.0]
    src, got = payloads(a), payloads(tmp_path / "r.rec")
    assert all(mx.recordio.unpack(got[k])[1] == mx.recordio.unpack(src[k])[1] for k in src)
    (tmp_path / "map.txt").write_text("0 5\n1 6\n2 7\n")
    rp.relabel(a, tmp_path / "m.rec", mapping=tmp_path / "map.txt")
    assert mx_labels(tmp_path / "m.rec") == [5.0, 6.0, 7.0, 5.0, 6.0, 7.0]
    multi = tmp_path / "multi.lst"
    multi.write_text("".join("%d\t%d\t1\tx.jpg\n" % (k, k) for k in range(6)))
    rp.relabel(a, tmp_path / "v.rec", list_file=multi)
    assert mx_labels(tmp_path / "v.rec", label_width=2) == [[float(k), 1.0] for k in range(6)]
    assert [mx.recordio.unpack(p)[0].flag for p in payloads(tmp_path / "v.rec").values()] == \
        [2] * 6


@pytest.mark.mxnet
def test_rewrite_reencodes_in_parallel_and_keeps_keys_and_labels(tmp_path, image_folder):
    import mxnet as mx
    root, lst, _ = image_folder
    rp.im2rec(lst, None, {"root": root, "pass_through": True}, str(tmp_path / "big"))
    rec = str(tmp_path / "big.rec")
    one = rp.rewrite(rec, tmp_path / "one.rec", resize=40, quality=80)[0]
    two = rp.rewrite(rec, tmp_path / "two.rec", resize=40, quality=80, num_workers=2)[0]
    assert one.written == two.written == len(payloads(rec))
    assert read(tmp_path / "one.rec") == read(tmp_path / "two.rec")
    src, got = payloads(rec), payloads(tmp_path / "one.rec")
    assert list(src) == list(got)
    for k in src:
        h0, _ = mx.recordio.unpack(src[k])
        h1, img = mx.recordio.unpack(got[k])
        assert (h0.label, h0.id, h0.id2) == (h1.label, h1.id, h1.id2)
        assert min(mx.image.imdecode(img).shape[:2]) == 40
    # the same pixels im2rec --resize 40 makes from the original files
    rp.im2rec(lst, None, {"root": root, "resize": 40, "quality": 80}, str(tmp_path / "ref"))
    assert read(tmp_path / "ref.rec") == read(tmp_path / "one.rec")
    flipped = rp.rewrite(rec, tmp_path / "t.rec", lambda img: img[:, ::-1], resize=40)[0]
    assert flipped.written == len(src)
    for k, payload in payloads(tmp_path / "t.rec").items():  # the transform ran on each
        mirrored = mx.image.imdecode(mx.recordio.unpack(payload)[1]).asnumpy()
        plain = mx.image.imdecode(mx.recordio.unpack(got[k])[1]).asnumpy()[:, ::-1]
        assert np.abs(mirrored.astype(int) - plain).mean() < 8  # the same, up to JPEG loss


@pytest.mark.mxnet
def test_rewrite_moves_detection_boxes_with_a_crop_or_refuses(tmp_path):
    import mxnet as mx
    rec = str(tmp_path / "det.rec")
    img = np.zeros((40, 80, 3), np.uint8)
    img[:, 40:60] = 255  # a white band: x in [0.5, 0.75)
    box = [2, 5, 3, 0.5, 0.1, 0.75, 0.9, 1, 0.0, 0.0, 0.2, 0.5]  # band, and one cropped out
    with RecordFileWriter(rec, encoding=".png", detection_labels=True) as w:
        w.write(img, box, key=0)
    with pytest.raises(OptionError, match="look like ImageDetRecordIter's boxes"):
        rp.rewrite(rec, tmp_path / "c.rec", center_crop=True)
    rp.rewrite(rec, tmp_path / "c.rec", center_crop=True, detection_labels=True,
               encoding=".png")
    header, data = mx.recordio.unpack(payloads(tmp_path / "c.rec")[0])
    label = np.asarray(header.label)
    assert label[:2].tolist() == [2, 5] and len(label) == 7  # the second object is gone
    # the crop keeps x in [0.25, 0.75] of the original: the band is now x in [0.5, 1]
    np.testing.assert_allclose(label[2:], [3, 0.5, 0.1, 1.0, 0.9], atol=1e-6)
    pixels = mx.image.imdecode(data).asnumpy()
    assert pixels.shape == (40, 40, 3)
    assert pixels[:, 20:].min() == 255 and pixels[:, :20].max() == 0  # where the box says
    rp.rewrite(rec, tmp_path / "r.rec", resize=20)  # normalized boxes survive a resize
    assert np.asarray(mx.recordio.unpack(payloads(tmp_path / "r.rec")[0])[0].label).tolist() \
        == np.float32(box).tolist()
    with pytest.raises(OptionError, match="transform may move"):
        rp.rewrite(rec, tmp_path / "t.rec", lambda x: x, detection_labels=True)


@pytest.mark.mxnet
def test_a_file_without_an_index_is_read_from_its_records(tmp_path, two_files):
    a, b = two_files
    import shutil
    shutil.copy(a, tmp_path / "noidx.rec")  # im2rec.cc writes no .idx
    rp.merge(tmp_path / "m.rec", [tmp_path / "noidx.rec", b])
    assert list(payloads(tmp_path / "m.rec")) == [0, 1, 2, 3, 4, 5, 2000, 2001, 2002, 2003]
    rp.filter_records(tmp_path / "noidx.rec", tmp_path / "f.rec", drop_flagged=True)
    assert payloads(tmp_path / "f.rec") == payloads(a)  # nothing flagged: no .idx is no fault
    assert not os.path.exists(tmp_path / "noidx.idx")


@pytest.mark.mxnet
def test_labels_match_as_float32_stores_them_and_keys_files_hold_any_key(tmp_path):
    """0.1 is stored as float32(0.1): filter and relabel given 0.1 must find it; a keys file
    may name keys beyond 2**53 (a float would round them)."""
    rec = str(tmp_path / "f.rec")
    with RecordFileWriter(rec, encoding=".png") as w:
        for k, img in zip((0, 1, 2**60 + 1), noise(3, 6)):
            w.write(img, 0.1 if k == 1 else 0.5, key=k)
    rp.filter_records(rec, tmp_path / "l.rec", labels=[0.1])
    assert list(payloads(tmp_path / "l.rec")) == [1]
    rp.relabel(rec, tmp_path / "r.rec", mapping={0.1: 3, 0.5: 4})
    assert mx_labels(tmp_path / "r.rec") == [4.0, 3.0, 4.0]
    (tmp_path / "keys.txt").write_text("%d\n" % (2**60 + 1))
    rp.filter_records(rec, tmp_path / "k.rec", keep_keys=tmp_path / "keys.txt")
    assert list(payloads(tmp_path / "k.rec")) == [2**60 + 1]
    (tmp_path / "bad.txt").write_text("%d\n" % 2**64)
    with pytest.raises(OptionError, match="not a record key"):
        rp.filter_records(rec, tmp_path / "x.rec", keep_keys=tmp_path / "bad.txt")


def test_commands_on_the_command_line(tmp_path, two_files):
    a, b = two_files
    run = lambda *args: subprocess.run(recpack_cmd(*args), capture_output=True, text=True)  # noqa
    bad = run("merge", tmp_path / "m.rec", a, a)
    assert bad.returncode == 1 and "--renumber" in bad.stderr and "Traceback" not in bad.stderr
    for args in (("merge", tmp_path / "m.rec", a, b), ("split", a, tmp_path / "s",
                                                        "--train-ratio", "0.5"),
                 ("shuffle", a, tmp_path / "x.rec", "--seed", "3"),
                 ("filter", a, tmp_path / "f.rec", "--labels", "1", "2"),
                 ("relabel", b, tmp_path / "r.rec", "--list", tmp_path / "r.lst",
                  "--keep-missing"),
                 ("rewrite", a, tmp_path / "w.rec", "--resize", "8", "--num-thread", "2")):
        (tmp_path / "r.lst").write_text("2000\t5\tx\n")
        done = run(*args)
        assert done.returncode == 0, (args, done.stderr)
        assert "records" in done.stdout
    for name in ("m", "s_train", "s_val", "x", "f", "r", "w"):
        assert rp.verify(str(tmp_path / (name + ".rec"))).problems == []


@pytest.mark.s3
def test_operations_and_checks_read_and_write_s3(tmp_path, two_files, s3, real_reader):
    fs, bucket = s3
    a, b = two_files
    for path in (a, idx_of(a), b, idx_of(b)):
        fs.put(path, "%s/in/%s" % (bucket, os.path.basename(path)))
    url = "s3://%s/in/" % bucket
    rp.merge("s3://%s/out/m.rec" % bucket, [url + "a.rec", url + "b.rec"])
    fs.get("%s/out/m.rec" % bucket, str(tmp_path / "m.rec"))
    fs.get("%s/out/m.idx" % bucket, str(tmp_path / "m.idx"))
    local = rp.merge(tmp_path / "local.rec", [a, b]).path
    assert read(tmp_path / "m.rec") == read(local) and read(tmp_path / "m.idx") == read(
        idx_of(local))
    assert len(real_reader(tmp_path / "m.rec")) == 10
    out = "s3://%s/out/m.rec" % bucket
    assert rp.verify(out).problems == [] and rp.verify(out).checksums == "match"
    assert rp.inspection.inspect_file(out)["records"] == 10
    fs.rm("%s/out/m.idx" % bucket)
    run = lambda *args: subprocess.run(recpack_cmd(*args), capture_output=True, text=True)  # noqa
    assert run("index", out).returncode == 0
    assert fs.cat("%s/out/m.idx" % bucket) == read(idx_of(local))
    checked = run("verify", "--json", out)
    assert checked.returncode == 0 and '"ok": true' in checked.stdout and out in checked.stdout
    assert run("extract", out, tmp_path / "ex").returncode == 0
    assert len(os.listdir(tmp_path / "ex")) == 11  # ten images and the list
    info = run("inspect", out)
    assert info.returncode == 0 and info.stdout.startswith(out)


def _as_png(img):
    return cv2.imencode(".png", np.ascontiguousarray(img[:, :, ::-1]))[1].tobytes()


@pytest.mark.parametrize("returned, match", [
    (lambda img: b"not an image", r"not an image: the first bytes b'not an i' match no "
                                  r"image format"),
    (lambda img: _as_png(img)[:-30], r"truncated PNG"),
    (lambda img: cv2.imencode(".webp", img)[1].tobytes(), r"a WEBP image, which MXNet's "
                                                          r"decoder cannot read"),
])
def test_rewrite_checks_the_bytes_a_transform_returns(tmp_path, real_reader, returned, match):
    """A transform may return encoded bytes: they are stored only when they are a whole image
    MXNet's decoder reads, as pass-through checks files; others stop the run (the transform's
    code is at fault, not the data) and nothing is written."""
    rec = write_arrays(tmp_path / "in.rec", noise(12, 4), list(range(12)), encoding=".png")
    with pytest.raises(rp.TransformError, match=r"ImageEncodeError on each of the first 8 "
                       r"items.*record key 0: the transform returned \d+ bytes that cannot be "
                       r"stored as the image \(" + match):
        rp.rewrite(rec, tmp_path / "bad.rec", returned)
    assert not os.path.exists(tmp_path / "bad.rec")
    rp.rewrite(rec, tmp_path / "png.rec", _as_png)  # whole PNG bytes: stored as they are
    theirs = real_reader(str(tmp_path / "png.rec"))
    assert [raw for _, raw, _ in theirs] == [_as_png(img) for img in noise(12, 4)]
    assert all((pixels == img).all() for (_, _, pixels), img in zip(theirs, noise(12, 4)))
