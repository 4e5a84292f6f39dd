"""recpack convert: ``.rec -> X -> .rec`` gives back the same ``.rec`` and ``.idx``, byte for
byte, for every format (keys, order, labels, vectors, ids, label-only records, headers MXNet's
pack would not write), read back by a reader that is not ours; shards roll by count and bytes;
a second run replaces a longer first one whole; an interrupted run resumes after its last whole
shard; bad input is refused before anything is written, naming what is wrong."""
import json
import os
import struct
import tarfile

import numpy as np
import pytest

from helpers import read
from mxnet_recpack import RecordFileWriter, convert
from mxnet_recpack.cli import main
from mxnet_recpack.errors import OptionError, OutputExistsError, RecpackError
from mxnet_recpack.format.header import label_only_record, pack_record


SUFFIX = {"webdataset": ".tar", "tfrecord": ".tfrecord", "parquet": ".parquet"}


def _jpg(photo, size):
    import cv2
    return cv2.imencode(".jpg", cv2.cvtColor(photo[:size, :size], cv2.COLOR_RGB2BGR))[1].tobytes()


def make_source(path, photos, *, vectors=True):
    """Photos as JPEG and PNG, a gray image, scalar labels (integral and not), vector labels
    with id2, InsightFace-style label-only records, a header MXNet's pack would not write, and
    keys far apart."""
    import cv2
    payloads = []
    for i, (_, photo) in enumerate(photos[:3]):
        payloads.append((10 + i, pack_record(float(i), 10 + i, _jpg(photo, 64 + 8 * i))))
    gray = cv2.cvtColor(photos[0][1][:30, :40], cv2.COLOR_RGB2GRAY)
    payloads.append((20, pack_record(0.25, 20, cv2.imencode(".png", gray)[1].tobytes())))
    if vectors:
        payloads.append((2 ** 40, pack_record([1.0, 0.5, -3.25], 7, _jpg(photos[1][1], 48),
                                              id2=9)))
        payloads.append((30, bytes(label_only_record([1, 4], 30, 0))))
        odd = struct.pack("<IfQQ", 2, 7.0, 31, 0) + np.float32([2, 3]).tobytes() + b"\x89PNG?"
        payloads.append((31, odd))  # a label field beside a vector: kept as its bytes
    with RecordFileWriter(str(path)) as w:
        for key, payload in payloads:
            w.write_payload(payload, key=key)
    return str(path)


def _folder_files(folder):
    return {n: read(os.path.join(folder, n)) for n in sorted(os.listdir(folder))}


@pytest.fixture
def source(tmp_path, photos):
    return make_source(tmp_path / "src.rec", photos)


#: Every format into a folder of shards and (except MDS, a folder only) into one file.
CASES = [("webdataset", "folder"), ("tfrecord", "folder"), ("mds", "folder"),
         pytest.param("parquet", "folder", marks=pytest.mark.formats),
         ("webdataset", "file"), ("tfrecord", "file"),
    pytest.param("parquet", "file", marks=pytest.mark.formats)]


@pytest.mark.parametrize("fmt,target", CASES)
def test_rec_to_format_and_back_is_byte_identical(fmt, target, tmp_path, source):
    dst = str(tmp_path / "out") if target == "folder" else str(tmp_path / ("one" + SUFFIX[fmt]))
    kind = "vector" if fmt == "parquet" else None  # scalar and vector labels in one column
    shards = {"shard_size": 3} if target == "folder" and fmt != "mds" else \
        {"shard_bytes": 3000} if fmt == "mds" else {}
    summary = convert(source, dst, to=fmt, label_kind=kind, **shards)
    assert summary.written == 7
    if target == "folder":
        assert len([n for n in os.listdir(dst) if n.endswith(SUFFIX.get(fmt, ".mds"))]) >= 3
    assert not os.path.exists(dst + ".convert.partial")
    back = str(tmp_path / "back.rec")
    assert convert(dst, back, from_=fmt).written == 7
    assert read(back) == read(source)
    assert read(back[:-4] + ".idx") == read(source[:-4] + ".idx")


@pytest.mark.mxnet
@pytest.mark.parametrize("fmt", ["webdataset", "tfrecord", "mds"])
def test_mxnet_reads_every_record_that_comes_back_as_it_read_the_original(fmt, tmp_path,
                                                                          source):
    import mxnet as mx

    def records(rec):
        r = mx.recordio.MXIndexedRecordIO(rec[:-4] + ".idx", rec, "r")
        out = {k: r.read_idx(k) for k in r.keys}
        r.close()
        return out

    convert(source, str(tmp_path / "out"), to=fmt, shard_size=2)
    back = str(tmp_path / "back.rec")
    convert(str(tmp_path / "out"), back)
    got, want = records(back), records(source)
    assert list(got) == list(want) and got == want
    for key in (10, 11, 12, 2 ** 40):
        header, image = mx.recordio.unpack(got[key])
        assert mx.image.imdecode(image).shape[2] == 3
    header, _ = mx.recordio.unpack(got[2 ** 40])
    assert (header.flag, header.id, header.id2) == (3, 7, 9)
    assert header.label.tolist() == [1.0, 0.5, -3.25]


@pytest.mark.parametrize("fmt", ["webdataset", "tfrecord", "mds"])
def test_the_cli_converts_both_ways_and_a_finished_run_resumed_is_a_no_op(fmt, tmp_path,
                                                                          source, capsys):
    out = str(tmp_path / "out")
    assert main(["convert", source, out, "--to", fmt, "--shard-size", "2", "-q"]) == 0
    first = _folder_files(out)
    assert main(["convert", source, out, "--to", fmt, "--shard-size", "2", "--resume"]) == 0
    assert "already complete" in capsys.readouterr().out
    assert _folder_files(out) == first
    assert main(["convert", out, str(tmp_path / "b.rec"), "-q"]) == 0  # told from the folder
    assert read(tmp_path / "b.rec") == read(source)


def test_a_second_run_replaces_a_longer_first_one_whole(tmp_path, source):
    out = str(tmp_path / "out")
    convert(source, out, to="webdataset", shard_size=1)
    assert len([n for n in os.listdir(out) if n.endswith(".tar")]) == 7
    convert(source, out, to="webdataset", shard_size=4)
    assert sorted(n for n in os.listdir(out) if n.endswith(".tar")) == \
        ["shard-000000.tar", "shard-000001.tar"]
    manifest = json.loads(read(os.path.join(out, ".recpack.json")))
    assert [f["name"] for f in manifest["files"]] == ["shard-000000.tar", "shard-000001.tar"]
    assert sum(f["records"] for f in manifest["files"]) == 7
    pattern = str(tmp_path / "p" / "train-{0000..0099}.tar")
    convert(source, pattern, shard_size=3)
    assert sorted(os.listdir(tmp_path / "p")) == [".train-.tar.recpack.json", "train-0000.tar",
                                                  "train-0001.tar", "train-0002.tar"]
    convert(str(tmp_path / "p" / "train-{0000..0002}.tar"), str(tmp_path / "c.rec"))
    assert read(tmp_path / "c.rec") == read(source)


class _Stop(Exception):
    pass


def test_an_interrupted_run_resumes_after_its_last_whole_shard(tmp_path, source):
    whole = str(tmp_path / "whole")
    convert(source, whole, to="tfrecord", shard_size=2, batch_size=1)
    out = str(tmp_path / "out")

    def stop_at_five(done, total):
        if done == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        convert(source, out, to="tfrecord", shard_size=2, batch_size=1, progress=stop_at_five)
    assert not os.path.exists(out)
    staged = sorted(os.listdir(out + ".convert.partial"))
    assert "000001.tfrecord" in staged and "000001.tfindex" in staged
    with pytest.raises(OptionError, match="differs in shard_size"):
        convert(source, out, to="tfrecord", shard_size=3, resume=True)
    seen = []
    convert(source, out, to="tfrecord", shard_size=2, batch_size=1, resume=True,
            progress=lambda d, t: seen.append(d))
    assert seen[0] == 5  # records 0-3 (two whole shards) were kept, the 5th written again
    assert _folder_files(out).keys() == _folder_files(whole).keys()
    for name in _folder_files(whole):
        if name != ".recpack.json":
            assert read(os.path.join(out, name)) == read(os.path.join(whole, name)), name
    assert not os.path.exists(out + ".convert.partial")
    assert not any(n.endswith((".partial.json", ".journal", ".lock")) and "out" in n
                   for n in os.listdir(tmp_path) if n != "out.lock")


def test_an_existing_target_is_refused_before_anything_is_written(tmp_path, source):
    out = str(tmp_path / "out")
    convert(source, out, to="webdataset")
    before = _folder_files(out)
    with pytest.raises(OutputExistsError):
        convert(source, out, to="webdataset", shard_size=1, overwrite=False)
    assert _folder_files(out) == before
    with pytest.raises(OptionError, match="Name it with --to"):
        convert(source, str(tmp_path / "new"))
    with pytest.raises(FileNotFoundError, match="nope: no such file or folder to convert"):
        convert(str(tmp_path / "nope"), str(tmp_path / "y.rec"))
    with pytest.raises(OptionError, match="both RecordIO"):
        convert(source, str(tmp_path / "x.rec"))
    with pytest.raises(OptionError, match="a shard size was given"):
        convert(source, str(tmp_path / "one.tar"), shard_size=2)


def _tar(path, members):
    with tarfile.open(path, "w") as t:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, __import__("io").BytesIO(data))


def test_another_writers_webdataset_gets_keys_in_order_and_its_cls_labels(tmp_path, photos,
                                                                          real_reader):
    jpgs = [_jpg(p, 40) for _, p in photos[:3]]
    _tar(tmp_path / "a-000000.tar", [("s%d.jpg" % i, j) for i, j in enumerate(jpgs[:2])] +
         [])
    _tar(tmp_path / "a-000001.tar", [("x.jpg", jpgs[2]), ("x.cls", b"4")])
    with pytest.raises(RecpackError, match="has no label.*--label 0"):
        convert(str(tmp_path / "a-{000000..000001}.tar"), str(tmp_path / "o.rec"))
    assert not os.path.exists(tmp_path / "o.rec")
    _tar(tmp_path / "a-000000.tar", [("s0.jpg", jpgs[0]), ("s0.cls", b"1"), ("s1.jpg", jpgs[1]),
                                     ("s1.cls", b"2")])
    convert(str(tmp_path / "a-{000000..000001}.tar"), str(tmp_path / "o.rec"))
    got = real_reader(str(tmp_path / "o.rec"))
    assert [(g[0], g[1]) for g in got] == [(1.0, jpgs[0]), (2.0, jpgs[1]), (4.0, jpgs[2])]
    assert [line.split("\t")[0] for line in read(tmp_path / "o.idx").decode().split()[::2]] \
        == ["0", "1", "2"]


def test_a_tar_that_is_not_a_webdataset_is_refused_naming_the_member(tmp_path, photos):
    jpg = _jpg(photos[0][1], 32)
    _tar(tmp_path / "bad.tar", [("a.jpg", jpg), ("b.jpg", jpg), ("a.cls", b"1")])
    with pytest.raises(RecpackError, match="members of sample 'a' are not together"):
        convert(str(tmp_path / "bad.tar"), str(tmp_path / "o.rec"), label=0)
    assert os.listdir(tmp_path) == ["bad.tar"]


def test_a_damaged_tfrecord_stops_the_run_naming_the_record(tmp_path, source):
    out = str(tmp_path / "t.tfrecord")
    convert(source, out)
    data = bytearray(read(out))
    data[len(data) // 2] ^= 0x40
    open(out, "wb").write(bytes(data))
    with pytest.raises(RecpackError, match="t.tfrecord.*(CRC|crc)"):
        convert(out, str(tmp_path / "o.rec"))
    assert not os.path.exists(tmp_path / "o.rec")
    assert not os.path.exists(tmp_path / "o.rec.pack.partial")


@pytest.mark.formats
def test_parquet_refuses_mixed_labels_and_a_file_without_images_before_writing(tmp_path,
                                                                               source):
    with pytest.raises(RecpackError, match="labels of mixed kinds.*label-kind vector"):
        convert(source, str(tmp_path / "o.parquet"))
    assert sorted(os.listdir(tmp_path)) == ["src.crc", "src.idx", "src.rec"]
    import pyarrow as pa
    import pyarrow.parquet as pq
    pq.write_table(pa.table({"pixels": [b"x"], "y": [1]}), str(tmp_path / "plain.parquet"))
    with pytest.raises(RecpackError, match="pixels"):
        convert(str(tmp_path / "plain.parquet"), str(tmp_path / "o.rec"))
    assert not os.path.exists(tmp_path / "o.rec")


@pytest.mark.s3
def test_a_rec_at_an_s3_url_converts_to_shards_and_shards_to_a_rec_at_a_url(tmp_path, s3,
                                                                            source):
    fs, bucket = s3
    for ext in (".rec", ".idx"):
        fs.put_file(source[:-4] + ext, "%s/src%s" % (bucket, ext))
    convert("s3://%s/src.rec" % bucket, str(tmp_path / "w"), to="webdataset", shard_size=3)
    convert(str(tmp_path / "w"), "s3://%s/back.rec" % bucket)
    assert fs.cat_file("%s/back.rec" % bucket) == read(source)
    assert fs.cat_file("%s/back.idx" % bucket) == read(source[:-4] + ".idx")
    with pytest.raises(OptionError, match="local disks only.*aws s3 sync"):
        convert(source, "s3://%s/wds/" % bucket, to="webdataset")


def test_rewrites_image_options_re_encode_on_the_way_and_keep_every_field(tmp_path, photos,
                                                                           real_reader):
    src = make_source(tmp_path / "s.rec", photos, vectors=False)
    out = str(tmp_path / "w")
    assert main(["convert", src, out, "--to", "webdataset", "--resize", "16", "--encoding",
                 ".png", "-q"]) == 0
    convert(out, str(tmp_path / "b.rec"))
    got, want = real_reader(str(tmp_path / "b.rec")), real_reader(src)
    assert [g[0] for g in got] == [w[0] for w in want]
    assert all(g[1].startswith(b"\x89PNG") and min(g[2].shape[:2]) == 16 for g in got)
    with pytest.raises(OptionError, match="reencode takes"):
        convert(src, str(tmp_path / "x"), to="webdataset", reencode={"size": 3})


def test_mds_index_records_the_shard_size_limit_as_mdswriter_does(tmp_path, source):
    """MDSWriter writes its size_limit into every shard's entry of index.json (67108864 by
    default); a reader that plans downloads by it must see what bounded the shards."""
    convert(source, str(tmp_path / "a"), to="mds")
    convert(source, str(tmp_path / "b"), to="mds", shard_bytes=300)
    for name, limit in (("a", 1 << 26), ("b", 300)):
        shards = json.load(open(tmp_path / name / "index.json"))["shards"]
        assert shards and {s["size_limit"] for s in shards} == {limit}, name
    assert len(json.load(open(tmp_path / "b" / "index.json"))["shards"]) > 1


def test_a_tfrecords_name_is_one_file_too(tmp_path, source):
    """TensorFlow's other spelling, .tfrecords, names one file (with DALI's index beside it),
    as .tfrecord does; it converts back byte for byte."""
    convert(source, str(tmp_path / "out.tfrecords"))
    assert (tmp_path / "out.tfrecords").is_file() and (tmp_path / "out.tfindex").is_file()
    convert(str(tmp_path / "out.tfrecords"), str(tmp_path / "back.rec"))
    assert read(tmp_path / "back.rec") == read(source)
    assert read(tmp_path / "back.idx") == read(source[:-4] + ".idx")
