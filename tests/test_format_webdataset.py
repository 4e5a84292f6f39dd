"""webdataset shards: what recpack writes is read by webdataset's own WebDataset (decoded) and by
DALI's fn.readers.webdataset, record by record; and read back by recpack exactly (every header
field, label-only records, keys up to 2**64-1). Tars that are not webdatasets are refused with
the member and the offset."""
import io
import os
import tarfile

import numpy as np
import pytest

from mxnet_recpack.errors import RecordFormatError
from mxnet_recpack.format.header import label_only_record, pack_record
from mxnet_recpack.formats.sample import sample_from_payload
from mxnet_recpack.formats.webdataset import codec

pytestmark = pytest.mark.formats


@pytest.fixture
def samples(photos):
    import cv2
    out = []
    for i, (_, photo) in enumerate(photos[:3]):
        bgr = cv2.cvtColor(photo[:120, :160], cv2.COLOR_RGB2BGR)
        jpg = cv2.imencode(".jpg", bgr)[1].tobytes()
        png = cv2.imencode(".png", bgr[:40, :50])[1].tobytes()
        out.append(sample_from_payload(10 + i, pack_record(float(i), 10 + i, jpg)))
        out.append(sample_from_payload(20 + i, pack_record([i, 0.5, 0.25], 20 + i, png,
                                                           id2=7)))
    out.append(sample_from_payload(0, bytes(label_only_record([1, 7], 0, 1))))
    out.append(sample_from_payload(2 ** 64 - 1, pack_record(2.5, 5, b"\xff\xd8\xffjunk")))
    return out


def write(path, samples):
    w = codec.ShardWriter(str(path))
    w.append([codec.encode(s) for s in samples])
    return w.close()


def test_recpack_reads_its_shards_back_exactly(tmp_path, samples):
    summary = write(tmp_path / "a.tar", samples)
    assert summary["records"] == len(samples)
    assert os.path.getsize(tmp_path / "a.tar") == summary["bytes"]
    located = codec.scan(str(tmp_path / "a.tar"))
    got = [codec.read(str(tmp_path / "a.tar"), loc) for loc in located]
    for a, b in zip(got, samples):
        assert (a.key, a.flag, a.id, a.id2, a.image, a.head) == \
            (b.key, b.flag, b.id, b.id2, b.image, b.head)
        np.testing.assert_array_equal(np.float32(a.label), np.float32(b.label))
    assert write(tmp_path / "b.tar", samples) == dict(summary, path=str(tmp_path / "b.tar"))
    assert (tmp_path / "a.tar").read_bytes() == (tmp_path / "b.tar").read_bytes()


def test_webdatasets_own_reader_decodes_every_sample(tmp_path, samples):
    import webdataset as wds
    samples = samples[:-1]  # the last one's "image" is not one: PIL would refuse it
    write(tmp_path / "a.tar", samples)
    got = list(wds.WebDataset(str(tmp_path / "a.tar"), shardshuffle=False).decode("rgb"))
    assert [s["__key__"] for s in got] == [codec.sample_key(s.key) for s in samples]
    for sample, mine in zip(got, samples):
        meta = sample["json"]
        assert meta["key"] == mine.key and meta["id"] == mine.id and meta["id2"] == mine.id2
        if mine.flag == 0 and float(mine.label).is_integer():
            assert sample["cls"] == int(mine.label)
        if "jpg" in sample:
            assert sample["jpg"].shape == (120, 160, 3) and sample["jpg"].dtype == np.float32
        if "png" in sample:
            assert sample["png"].shape == (40, 50, 3)
    assert set(got[-1]) - {"__local_path__"} == {"__key__", "__url__", "json"}  # label only


@pytest.mark.dali
def test_dalis_webdataset_reader_gives_the_same_bytes(tmp_path, samples):
    from nvidia.dali import fn, pipeline_def
    images = [s for s in samples if s.image.startswith(b"\xff\xd8") and s.flag == 0 and
              float(s.label).is_integer()]
    write(tmp_path / "a.tar", images)

    @pipeline_def(batch_size=len(images), num_threads=1, device_id=None)
    def pipe():
        jpg, cls = fn.readers.webdataset(paths=[str(tmp_path / "a.tar")], ext=["jpg", "cls"],
                                         missing_component_behavior="error")
        return jpg, cls

    p = pipe()
    p.build()
    jpg, cls = p.run()
    assert [np.array(jpg.at(i)).tobytes() for i in range(len(images))] == \
        [s.image for s in images]
    assert [int(bytes(np.array(cls.at(i)))) for i in range(len(images))] == \
        [int(s.label) for s in images]


def _tar(path, members):
    with tarfile.open(path, "w") as t:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))


def test_shards_of_other_tools_are_read_by_the_rule(tmp_path):
    _tar(tmp_path / "x.tar", [("a/cat.jpg", b"\xff\xd8\xffA"), ("a/cat.cls", b"3"),
                              ("a/dog.jpg", b"\xff\xd8\xffB"), ("a/dog.cls", b"1")])
    located = codec.scan(str(tmp_path / "x.tar"))
    got = [codec.read(str(tmp_path / "x.tar"), loc, position=100 + i)
           for i, loc in enumerate(located)]
    assert [(s.key, s.label, s.image) for s in got] == [(100, 3.0, b"\xff\xd8\xffA"),
                                                        (101, 1.0, b"\xff\xd8\xffB")]
    _tar(tmp_path / "n.tar", [("cat.jpg", b"\xff\xd8\xffA")])
    loc = codec.scan(str(tmp_path / "n.tar"))[0]
    with pytest.raises(RecordFormatError, match=r"sample 'cat' has no label .*--label 0"):
        codec.read(str(tmp_path / "n.tar"), loc)
    assert codec.read(str(tmp_path / "n.tar"), loc, label=0).label == 0.0


@pytest.mark.parametrize("members, message", [
    ([("a.jpg", b"x"), ("b.jpg", b"y"), ("a.cls", b"1")], r"members of sample 'a' are not "
     r"together"),
    ([("README", b"x")], r"tar member 'README' has no extension"),
    ([("a.jpg", b"x"), ("a.jpg", b"y")], r"sample 'a' has two 'jpg' members"),
])
def test_a_tar_that_is_not_a_webdataset_is_refused(tmp_path, members, message):
    _tar(tmp_path / "bad.tar", members)
    with pytest.raises(RecordFormatError, match=message):
        codec.check(str(tmp_path / "bad.tar"))


def test_a_cut_shard_says_where(tmp_path, samples):
    write(tmp_path / "a.tar", samples)
    data = (tmp_path / "a.tar").read_bytes()
    (tmp_path / "a.tar").write_bytes(data[:len(data) // 2])
    with pytest.raises(RecordFormatError, match=r"byte offset \d+: .*(ends first|inside a tar)"):
        codec.check(str(tmp_path / "a.tar"))
    (tmp_path / "j.tar").write_bytes(b"not a tar at all" * 100)
    with pytest.raises(RecordFormatError, match=r"j\.tar, byte offset 0: not a tar member"):
        codec.check(str(tmp_path / "j.tar"))


def test_tars_with_pax_and_gnu_long_names_are_read(tmp_path, photos):
    """webdataset's own TarWriter writes pax headers; Python's tarfile writes them for long
    or non-ASCII names (pax) and, in GNU format, long names as ././@LongLink members."""
    import cv2
    import webdataset as wds
    jpegs = [cv2.imencode(".jpg", p[:64, :64, ::-1])[1].tobytes() for _, p in photos[:3]]
    with wds.TarWriter(str(tmp_path / "w.tar")) as sink:
        for i, data in enumerate(jpegs):
            sink.write({"__key__": "sample%04d" % i, "jpg": data, "cls": i + 4})
    long = "d" * 120 + "/photo_ü"
    for name, fmt in (("pax.tar", tarfile.PAX_FORMAT), ("gnu.tar", tarfile.GNU_FORMAT)):
        with tarfile.open(tmp_path / name, "w", format=fmt) as t:
            for i, data in enumerate(jpegs):
                for ext, payload in (("jpg", data), ("cls", b"%d" % (i + 4))):
                    info = tarfile.TarInfo("%s%d.%s" % (long, i, ext))
                    info.size, info.mtime = len(payload), 1.5  # a fraction: pax for it too
                    t.addfile(info, io.BytesIO(payload))
    for name in ("w.tar", "pax.tar", "gnu.tar"):
        located = codec.scan(str(tmp_path / name))
        got = [codec.read(str(tmp_path / name), loc, position=i) for i, loc in enumerate(located)]
        assert [(s.key, s.label, s.image) for s in got] == [
            (i, float(i + 4), data) for i, data in enumerate(jpegs)], name
    assert located[0]["__key__"] == long + "0"


def test_numbered_samples_of_other_writers_take_their_position(tmp_path, photos):
    """img2dataset's shards: 000000005.jpg + 000000005.json (its own metadata) + .cls: the
    names are numbers, but the .json is not recpack's, so the keys are positions."""
    import json

    import cv2

    from mxnet_recpack.formats.items import ShardItems
    from mxnet_recpack.formats.webdataset.format import WEBDATASET
    data = cv2.imencode(".jpg", photos[0][1][:32, :32, ::-1])[1].tobytes()
    members = []
    for n in (5, 9, 2):
        members += [("%09d.jpg" % n, data), ("%09d.cls" % n, b"1"),
                    ("%09d.json" % n, json.dumps({"url": "x", "key": "%09d" % n}).encode())]
    _tar(tmp_path / "00000.tar", members)
    items = ShardItems(WEBDATASET, str(tmp_path / "00000.tar"))
    assert list(items.record_keys) == [0, 1, 2]
    assert [items.sample(i).key for i in range(3)] == [0, 1, 2]


def test_a_class_float32_cannot_hold_is_refused(tmp_path):
    _tar(tmp_path / "big.tar", [("a.jpg", b"\xff\xd8\xffA"), ("a.cls", b"16777217")])
    loc = codec.scan(str(tmp_path / "big.tar"))[0]
    with pytest.raises(RecordFormatError, match=r"sample 'a': integer label 16777217 cannot "
                                                r"be stored exactly"):
        codec.read(str(tmp_path / "big.tar"), loc)
