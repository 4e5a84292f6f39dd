"""TFRecord shards hold every RecordIO record exactly (``.rec -> TFRecord -> .rec`` gives the
same ``.rec`` and ``.idx`` bytes), in TensorFlow's ImageNet convention for other readers: the
``tfrecord`` package and NVIDIA DALI's ``fn.readers.tfrecord`` (with our index files) read
every record's image bytes, labels and keys; files the ``tfrecord`` package writes are read by
the rule for foreign files; damage gives an error naming the file, record and byte offset."""
import gzip
import io
import os
import pickle
import struct
import subprocess
import sys
import tempfile
import threading
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import read
from mxnet_recpack import RecordFileWriter
from mxnet_recpack.errors import IndexFormatError, RecordFormatError
from mxnet_recpack.format.framing import MAGIC_BYTES
from mxnet_recpack.format.header import label_only_record, pack_record
from mxnet_recpack.format.reader import RecordFile
from mxnet_recpack.formats import tfrecord as tfr
from mxnet_recpack.formats.sample import Sample, payload_of, sample_from_payload
from mxnet_recpack.formats.tfrecord.example import (BYTES, FLOAT, INT64, decode_example,
                                                    encode_example)
from mxnet_recpack.formats.tfrecord.framing import frame_chunks, masked_crc
from mxnet_recpack.images.codec import encode_image

U64 = (1 << 64) - 1


def _float32(bits):
    return float(np.array([bits], np.uint32).view(np.float32)[0])


def _npy(array):
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def _payloads(photos):
    """``(key, payload)`` of every kind of record: real JPEG and PNG photos with integral,
    fractional, negative and huge labels, vector labels (NaN bits of their own included),
    InsightFace's label-only records, keys up to 2**64-1 with id != key and id2 != 0, headers
    that do not re-pack (``head``), bytes of no image format, a payload holding the magic word."""
    jpegs = [encode_image(p[::3, ::3], ".jpg", 90) for _, p in photos[:6]]
    png = encode_image(photos[0][1][:40, :50], ".png", 3)
    gray = encode_image(photos[1][1][:30, :20, 0], ".png", 3)
    odd_head = struct.pack("<IfQQ", 2, 7.0, 11, 3) + np.float32([1, 2]).tobytes()
    snan_head = struct.pack("<IIQQ", 0, 0x7F800001, 12, 0)
    nan_bits = np.array([0x7FC00001, 0x3F800000], np.uint32).view(np.float32)
    return [
        (0, label_only_record([1, 9], 0, id2=1)),                  # InsightFace header
        *[(k + 1, pack_record(float(k % 3), k + 1, j)) for k, j in enumerate(jpegs)],
        (7, pack_record(0.5, 7, png)),
        (8, pack_record(-3, 8, gray)),
        (9, label_only_record([1, 3], 9)),                         # identity record
        (10, pack_record(float(np.float32(1e30)), 10, jpegs[0])),  # integral, not an int64
        (11, odd_head + jpegs[1]),                                 # head does not re-pack
        (12, snan_head + png),                                     # a NaN of its own bits
        (13, struct.pack("<IfQQ", 2, 0.0, 13, 0) + nan_bits.tobytes() + png),
        (14, pack_record([4, 2.5, -1], 99, jpegs[2], id2=2 ** 63 + 5)),   # id != key
        (U64, pack_record(5, U64, b"not an image" + MAGIC_BYTES * 3, id2=U64)),
        (2 ** 63, pack_record(2, 2 ** 63 + 1, _npy(np.arange(6, dtype=np.float32)))),
    ]


@pytest.fixture(scope="module")
def payloads(photos):
    return _payloads(photos)


@pytest.fixture(scope="module")
def samples(payloads):
    return [sample_from_payload(k, p) for k, p in payloads]


def _all(path, **options):
    """Every Sample of a shard, in order."""
    with tfr.ShardReader(path, **options) as reader:
        return list(reader)


def _same(a, b):
    """Two Samples are the same, bits of the labels included."""
    assert (a.key, a.flag, a.id, a.id2, a.image, a.head) == (b.key, b.flag, b.id, b.id2,
                                                             b.image, b.head)
    assert type(a.label) is type(b.label)
    assert np.asarray(a.label, np.float32).tobytes() == np.asarray(b.label, np.float32).tobytes()


def _write_shards(folder, samples, per_shard=5):
    """Shards of ``per_shard`` samples and their index files, as the runner makes them."""
    paths = []
    for i in range(0, len(samples), per_shard):
        path = os.path.join(str(folder), "part-%05d.tfrecord" % (i // per_shard))
        with tfr.ShardWriter(path) as w:
            w.append([tfr.encode(s) for s in samples[i:i + per_shard]])
            summary = w.close()
        with open(tfr.index_path_of(path), "wb") as f:
            f.write(tfr.index_file(summary))
        paths.append(path)
    return paths


@pytest.fixture
def shards(tmp_path, samples):
    return _write_shards(tmp_path, samples)


def test_every_sample_reads_back_exactly(shards, samples):
    got = [s for path in shards for s in _all(path)]
    assert len(got) == len(samples)
    for ours, theirs in zip(got, samples):
        _same(ours, theirs)
    assert sum(tfr.check(p, index_path=tfr.index_path_of(p)) for p in shards) == len(samples)


def test_rec_to_tfrecord_to_rec_gives_the_same_bytes(tmp_path, payloads):
    rec = str(tmp_path / "orig.rec")
    with RecordFileWriter(rec) as w:
        for key, payload in payloads:
            w.write_payload(payload, key)
    with RecordFile(rec) as rf:
        samples = [sample_from_payload(k, rf.read(k)) for k in rf.keys]
    shards = _write_shards(tmp_path, samples, per_shard=4)
    back = str(tmp_path / "back.rec")
    with RecordFileWriter(back) as w:
        for path in shards:
            with tfr.ShardReader(path) as reader:
                for loc in tfr.scan(path):
                    s = reader.read(loc)
                    w.write_payload(payload_of(s), s.key)
    assert read(back) == read(rec)
    assert read(back[:-4] + ".idx") == read(rec[:-4] + ".idx")


def test_features_follow_the_imagenet_convention(samples, tmp_path):
    path = _write_shards(tmp_path, samples, per_shard=len(samples))[0]
    data = read(path)
    for s, loc in zip(samples, tfr.scan(path)):
        f = decode_example(data[loc.offset + 12:loc.offset + 12 + loc.length])
        assert bytes(f["image/encoded"][1][0]) == s.image
        integral = s.flag == 0 and float(s.label).is_integer() and abs(s.label) < 2 ** 63
        assert f.get("image/class/label") == ((INT64, [int(s.label) & U64]) if integral
                                              else None)
        if s.image[:3] == b"\xff\xd8\xff":
            assert bytes(f["image/format"][1][0]) == b"JPEG"
        elif s.image[:4] == b"\x89PNG":
            assert bytes(f["image/format"][1][0]) == b"PNG"
        elif s.image[:6] == b"\x93NUMPY":
            assert bytes(f["image/format"][1][0]) == b"NPY" and "image/height" not in f
        else:
            assert "image/format" not in f and "image/height" not in f
        if s.image[:4] in (b"\xff\xd8\xff\xe0", b"\x89PNG"):
            import cv2
            shape = cv2.imdecode(np.frombuffer(s.image, np.uint8), cv2.IMREAD_UNCHANGED).shape
            assert (f["image/height"][1], f["image/width"][1]) == ([shape[0]], [shape[1]])
        assert ("recordio/header" in f) == (s.head is not None)
        assert f["recordio/key"] == (INT64, [s.key])


def test_shards_are_deterministic(tmp_path, samples):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a, b = _write_shards(tmp_path / "a", samples), _write_shards(tmp_path / "b", samples)
    for x, y in zip(a, b):
        assert read(x) == read(y) and read(tfr.index_path_of(x)) == read(tfr.index_path_of(y))


def test_writer_counts_and_index_match_the_file(tmp_path, samples):
    path = str(tmp_path / "one.tfrecord")
    w = tfr.ShardWriter(path)
    records = [tfr.encode(s) for s in samples]
    w.append(records[:3])
    assert (w.count, w.nbytes) == (3, sum(map(len, records[:3])))
    w.append(records[3:])
    summary = w.close()
    assert summary["records"] == len(samples) and summary["bytes"] == os.path.getsize(path)
    assert tfr.index_file(summary) == tfr.index_of(path)
    lines = tfr.index_file(summary).decode().splitlines()
    assert lines[0] == "0 %d" % len(records[0]) and len(lines) == len(samples)


def test_masked_crc_known_answer():
    # CRC32C("123456789") is the standard check value 0xE3069283; TFRecord's mask rotates it
    # right by 15 bits and adds 0xa282ead8.
    crc = 0xE3069283
    assert masked_crc(crc) == (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF
    framed = frame_chunks([b"123456789"])
    assert framed[:8] == struct.pack("<Q", 9)
    assert framed[-4:] == struct.pack("<I", masked_crc(crc))


# ----------------------------------------------------------------------------- property tests

_labels = st.one_of(
    st.tuples(st.just(0), st.floats(width=32, allow_nan=False)),
    st.integers(1, 6).flatmap(lambda n: st.tuples(st.just(n), st.lists(
        st.floats(width=32), min_size=n, max_size=n))))


@st.composite
def _samples_st(draw):
    flag, label = draw(_labels)
    label = float(np.float32(label)) if flag == 0 else np.array(label, np.float32)
    ints = st.integers(0, U64)
    key, ident, id2 = draw(ints), draw(ints), draw(ints)
    image = draw(st.one_of(st.just(b""), st.binary(max_size=300),
                           st.sampled_from([b"\xff\xd8\xff\xe0" + bytes(40), b"\x89PNG\r\n"])))
    head = None
    if draw(st.booleans()):
        head = struct.pack("<IfQQ", flag, draw(st.floats(width=32)), ident, id2) + \
            np.asarray(label if flag else [], np.float32).tobytes()
    return Sample(key, flag, label, ident, id2, image, head)


@settings(max_examples=150, deadline=None)
@given(st.lists(_samples_st(), min_size=1, max_size=4))
def test_any_sample_round_trips(samples):
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "x.tfrecord")
        with tfr.ShardWriter(path) as w:
            w.append([tfr.encode(s) for s in samples])
        with tfr.ShardReader(path) as reader:
            for s, back in zip(samples, reader):
                _same(back, s)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200), st.data())
def test_damaged_protobufs_give_only_record_format_errors(noise, data):
    valid = b"".join(encode_example([("image/encoded", BYTES, [b"abc"]),
                                     ("recordio/label", FLOAT, [1.5, 2]),
                                     ("recordio/key", INT64, [U64, 3])]))
    at = data.draw(st.integers(0, len(valid)))
    for blob in (noise, valid[:at] + noise + valid[at:], valid[:at]):
        try:
            decode_example(blob)
        except RecordFormatError as exc:
            assert "protobuf is malformed" in str(exc)


# ------------------------------------------------------------------ the protobuf parsing rules

def _tag(field, wire):
    return bytes([field << 3 | wire])


def _varint(n):
    out = b""
    while n > 127:
        out, n = out + bytes([n & 127 | 128]), n >> 7
    return out + bytes([n])


def _ld(field, body):
    """A length-delimited field."""
    return _tag(field, 2) + _varint(len(body)) + body


_UNKNOWN = (_tag(9, 0) + b"\x96\x01" + _tag(10, 1) + bytes(8) + _tag(11, 5) + bytes(4)
            + _ld(12, b"skip") + _tag(13, 3) + _tag(14, 3) + _tag(14, 4) + _tag(15, 0) + b"\x01"
            + _tag(13, 4))


def test_parser_skips_unknown_fields_and_groups_at_every_level():
    u = _UNKNOWN
    int64s = _ld(3, u + _ld(1, b"\x05\x07") + u)                 # packed 5, 7
    floats = _ld(2, u + _tag(1, 5) + struct.pack("<f", 1.5) + u)  # unpacked 1.5
    entry = lambda name, feature: _ld(1, u + _ld(1, name) + u + _ld(2, u + feature + u))  # noqa
    example = u + _ld(1, u + entry(b"a", int64s) + entry(b"b", floats) + u) + u
    assert decode_example(example) == {"a": (INT64, [5, 7]), "b": (FLOAT, [1.5])}


def test_parser_merges_as_protobuf_does():
    one = _ld(3, _ld(1, b"\x01"))                                   # int64_list [1], packed
    first = _ld(1, _ld(1, b"x") + _ld(2, one))
    again = _ld(1, _ld(1, b"x") + _ld(2, _ld(1, _ld(1, b"new"))))   # a later entry wins
    other = _ld(1, _ld(1, b"y") + _ld(2, one + _ld(3, _tag(1, 0) + b"\x02")))  # lists merge
    kinds = _ld(1, _ld(1, b"z") + _ld(2, one + _ld(2, b"")))       # oneof: the last kind
    f = decode_example(_ld(1, first + other) + _ld(1, again + kinds))  # features twice: merged
    assert [bytes(v) for v in f["x"][1]] == [b"new"] and f["x"][0] == BYTES
    assert f["y"] == (INT64, [1, 2])
    assert f["z"][0] == FLOAT and len(f["z"][1]) == 0


@pytest.mark.parametrize("blob, what", [
    (b"\x0a\x05\x0a", "runs past the end"),
    (b"\x0a\x00\x08" + b"\xff" * 11, "longer than 10 bytes"),
    (b"\x00\x00", "field number 0"),
    (b"\x0f", "wire type 7 does not exist"),
    (b"\x0c", "end-group without a start"),
    (b"\x0b" + b"\x0a\x00", "group 1 has no end"),
    (b"\x0b\x14", "group 1 ends as group 2"),
    (_ld(1, _ld(1, _ld(1, b"f") + _ld(2, _ld(2, _ld(1, b"abc"))))), "not a multiple of 4"),
    (_ld(1, _ld(1, _ld(1, b"\xff") + _ld(2, b""))), "not UTF-8"),
])
def test_parser_names_what_is_malformed(blob, what):
    with pytest.raises(RecordFormatError, match="protobuf is malformed at byte .*" + what):
        decode_example(blob)


# ----------------------------------------------------------------------------------- damage

def _one_shard(tmp_path, samples):
    path = str(tmp_path / "d.tfrecord")
    with tfr.ShardWriter(path) as w:
        w.append([tfr.encode(s) for s in samples])
    return path


def _poke(path, offset, xor=0x01):
    data = bytearray(read(path))
    data[offset] ^= xor
    with open(path, "wb") as f:
        f.write(bytes(data))


def test_a_damaged_data_byte_fails_its_crc(tmp_path, samples):
    path = _one_shard(tmp_path, samples[:4])
    locs = tfr.scan(path)
    _poke(path, locs[2].offset + 12 + locs[2].length // 2)
    assert tfr.scan(path) == locs                     # the scan reads only the heads
    tfr.read(path, locs[1])                           # its neighbours still read
    for call in (lambda: tfr.read(path, locs[2]), lambda: tfr.check(path)):
        with pytest.raises(RecordFormatError, match=r"d\.tfrecord, byte offset %d: record 2: "
                           r"the CRC32C of its %d data bytes does not match \(stored 0x[0-9a-f]"
                           r"{8}, computed 0x[0-9a-f]{8}\).*create it again from its source"
                           % (locs[2].offset, locs[2].length)) as exc:
            call()
        assert exc.value.path == path and exc.value.offset == locs[2].offset


def test_a_damaged_length_fails_its_crc(tmp_path, samples):
    path = _one_shard(tmp_path, samples[:3])
    at = tfr.scan(path)[1].offset
    _poke(path, at + 1)
    with pytest.raises(RecordFormatError, match=r"byte offset %d: record 1: the CRC32C of its "
                       r"length field does not match .*not a TFRecord file, or the file is "
                       r"damaged" % at):
        tfr.scan(path)


@pytest.mark.parametrize("cut", [1, 4, 5, 17])
def test_a_truncated_file_is_named_with_where_it_stops(tmp_path, samples, cut):
    path = _one_shard(tmp_path, samples[:3])
    size = os.path.getsize(path)
    last = tfr.scan(path)[-1]
    os.truncate(path, size - cut)
    with pytest.raises(RecordFormatError, match=r"byte offset %d: record 2: truncated: it "
                       r"declares %d bytes of data, so it ends at byte %d, but the file has %d "
                       r"bytes" % (last.offset, last.length, size, size - cut)):
        tfr.check(path)
    os.truncate(path, last.offset + 7)
    with pytest.raises(RecordFormatError, match="record 2: truncated: 7 bytes are left where"):
        tfr.scan(path)


def test_bytes_after_the_last_record(tmp_path, samples):
    path = _one_shard(tmp_path, samples[:2])
    size = os.path.getsize(path)
    with open(path, "ab") as f:
        f.write(b"\0" * 20)
    with pytest.raises(RecordFormatError, match="byte offset %d: record 2: the CRC32C of its "
                       "length field" % size):
        tfr.scan(path)


@pytest.mark.parametrize("compress, name", [(gzip.compress, "GZIP.*gunzip"),
                                            (zlib.compress, "ZLIB.*zlib.decompress")])
def test_a_compressed_tfrecord_says_how_to_read_it(tmp_path, samples, compress, name):
    path = _one_shard(tmp_path, samples[:2])
    with open(path, "wb") as f:
        f.write(compress(b"".join(tfr.encode(s) for s in samples[:2]), 6))
    with pytest.raises(RecordFormatError, match="byte offset 0: not an uncompressed TFRecord: "
                       "this looks like a TFRecord compressed with " + name):
        tfr.scan(path)


def test_a_missing_file(tmp_path):
    with pytest.raises(RecordFormatError, match=r"nothere\.tfrecord: cannot open the TFRecord "
                       "file: No such file"):
        tfr.scan(str(tmp_path / "nothere.tfrecord"))


def test_an_empty_file_has_no_records(tmp_path):
    path = tmp_path / "empty.tfrecord"
    path.write_bytes(b"")
    assert tfr.scan(str(path)) == [] and tfr.check(str(path)) == 0


def _framed(features):
    return frame_chunks(encode_example(features))


_OURS = [("image/encoded", BYTES, [b"x"]), ("recordio/key", INT64, [4]),
         ("recordio/flag", INT64, [2]), ("recordio/label", FLOAT, [1, 2]),
         ("recordio/id", INT64, [4]), ("recordio/id2", INT64, [0])]


@pytest.mark.parametrize("change, what", [
    (lambda f: f[:2] + f[3:], "feature 'recordio/flag' is missing \\(expected an int64 list of "
                              "1 value\\)"),
    (lambda f: f[:1] + [("recordio/key", FLOAT, [4])] + f[2:], "feature 'recordio/key' is a "
                                                               "float list, expected an int64"),
    (lambda f: f[:3] + [("recordio/label", FLOAT, [1, 2, 3])] + f[4:],
     "feature 'recordio/label' holds 3 values, expected 2"),
    (lambda f: f + [("recordio/header", BYTES, [b"\0" * 24])],
     "feature 'recordio/header' holds 24 bytes that are not a RecordIO header of flag 2"),
    (lambda f: f[:2] + [("recordio/flag", INT64, [1 << 40])] + f[3:], ".*a RecordIO flag is a "
                                                                      "uint32; a record with"),
])
def test_fields_a_sample_needs_are_checked(tmp_path, change, what):
    path = tmp_path / "f.tfrecord"
    path.write_bytes(_framed(_OURS) + _framed(change(list(_OURS))))
    assert tfr.read(str(path), tfr.scan(str(path))[0]).key == 4
    with pytest.raises(RecordFormatError, match="byte offset %d: record 1: %s"
                       % (len(_framed(_OURS)), what)):
        tfr.check(str(path))


def test_a_record_that_is_not_a_protobuf(tmp_path):
    path = tmp_path / "p.tfrecord"
    path.write_bytes(frame_chunks([b"\x0a\xff\xff\xff"]))
    with pytest.raises(RecordFormatError, match="byte offset 0: record 0: the tf.train.Example "
                       "protobuf is malformed at byte 1 of the record's 4: a varint runs past "
                       "the end of its message; the record is not a tf.train.Example"):
        tfr.check(str(path))


@pytest.mark.parametrize("extra, what", [
    ([("image/format", BYTES, [b"PNG"])], "'image/format' says 'png', but the image bytes are "
                                          "jpeg"),
    ([("image/height", INT64, [7])], "'image/height' says \\[7\\], the image header says 20"),
    ([("image/class/label", INT64, [2])], "'image/class/label' says \\[2\\], but recordio/label "
                                          "is 3.0"),
])
def test_check_finds_convention_features_that_lie(tmp_path, photos, extra, what):
    jpeg = encode_image(photos[0][1][:20, :30], ".jpg", 90)
    good = tfr.encode(sample_from_payload(1, pack_record(3, 1, jpeg)))
    names = {e[0] for e in extra}
    features = [f for f in decode_example(good[12:-4]).items() if f[0] not in names]
    bad = [(n, k, [bytes(x) for x in v] if k == BYTES else v) for n, (k, v) in features] + extra
    path = tmp_path / "c.tfrecord"
    path.write_bytes(good + _framed(bad))
    assert _all(str(path))[1].label == 3.0     # reading trusts recordio/*
    with pytest.raises(RecordFormatError, match="record 1: feature %s: the file was changed"
                       % what):
        tfr.check(str(path))


def test_an_index_that_does_not_match(tmp_path, samples):
    path = _one_shard(tmp_path, samples[:3])
    index = tmp_path / "d.tfindex"
    good = tfr.index_of(path).decode().splitlines()
    for lines, what in ((good[:2], "lists 2 records, .*d.tfrecord has 3"),
                        (good[:1] + ["5 9"] + good[2:], "line 2: says '5 9', but record 1 of "),
                        (good[:1] + ["5 nine"], "line 2: expected '<offset> <size>'")):
        index.write_text("\n".join(lines) + "\n")
        with pytest.raises(IndexFormatError, match=r"d\.tfindex.*" + what):
            tfr.check(path, index_path=str(index))


# ------------------------------------------------------------ files this tool did not write

def test_foreign_records_take_keys_from_their_position(tmp_path, photos):
    jpeg = encode_image(photos[0][1][:20, :30], ".jpg", 90)
    path = tmp_path / "f.tfrecord"
    path.write_bytes(b"".join(_framed(f) for f in (
        [("image/encoded", BYTES, [jpeg]), ("image/class/label", INT64, [7])],
        [("image/encoded", BYTES, [jpeg]), ("image/class/label", INT64, [U64])],   # -1
        [("image/encoded", BYTES, [jpeg]), ("image/class/label", FLOAT, [0.5, 2])],
        [("image/encoded", BYTES, [jpeg]), ("image/filename", BYTES, [b"a.jpg"])])))
    with pytest.raises(RecordFormatError, match="record 3: feature 'image/class/label' is "
                       "missing or empty: give a default label for records without one "
                       "\\(default_label\\); a record without 'recordio/key'"):
        tfr.check(str(path))
    got = _all(str(path), first_key=100, default_label=-2)
    assert [(s.key, s.id, s.id2, s.flag, s.head) for s in got] == [
        (100 + i, 100 + i, 0, f, None) for i, f in enumerate((0, 0, 2, 0))]
    assert [s.label for s in (got[0], got[1], got[3])] == [7.0, -1.0, -2.0]
    np.testing.assert_array_equal(got[2].label, np.float32([0.5, 2]))
    assert all(s.image == jpeg for s in got)
    assert tfr.check(str(path), default_label=0) == 4


@pytest.mark.parametrize("features, what", [
    ([("image/class/label", INT64, [1])],
     "feature 'image/encoded' is missing \\(expected a bytes list of 1 value\\); a record "
     "without 'recordio/key' .*ImageNet"),
    ([("image/encoded", BYTES, [b"a", b"b"]), ("image/class/label", INT64, [1])],
     "feature 'image/encoded' holds 2 values, expected 1"),
    ([("image/encoded", BYTES, [b"a"]), ("image/class/label", INT64, [(1 << 24) + 1])],
     "feature 'image/class/label': integer label 16777217 cannot be stored exactly"),
    ([("image/encoded", BYTES, [b"a"]), ("image/class/label", BYTES, [b"cat"])],
     "feature 'image/class/label' is a bytes list, expected an int64 or float list"),
])
def test_foreign_records_that_cannot_be_samples(tmp_path, features, what):
    path = tmp_path / "f.tfrecord"
    path.write_bytes(_framed(features))
    with pytest.raises(RecordFormatError, match="byte offset 0: record 0: " + what):
        tfr.read(str(path), tfr.scan(str(path))[0])


# ------------------------------------------------------------------- threads and processes

def test_one_reader_serves_threads_and_is_picklable(shards, samples):
    reader = tfr.ShardReader(shards[0])
    expected = [payload_of(s) for s in reader]
    results, errors = {}, []

    def work(i):
        try:
            results[i] = [payload_of(reader[j]) for j in range(len(reader))][::-1]
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors and all(r[::-1] == expected for r in results.values())
    with pickle.loads(pickle.dumps(reader)) as copy:
        assert copy._file is None and [payload_of(s) for s in copy] == expected
    reader.close()


def _payloads_in_child(reader):
    return [payload_of(s) for s in reader]


def test_forked_workers_read_with_their_own_descriptor(shards):
    import multiprocessing
    reader = tfr.ShardReader(shards[1])
    expected = _payloads_in_child(reader)                 # the parent's descriptor is open
    with multiprocessing.get_context("fork").Pool(2) as pool:
        assert pool.map(_payloads_in_child, [reader, reader]) == [expected, expected]
    reader.close()


# ------------------------------------------------------------- the tfrecord package (vahidk)

def _tfrecord_records(path, index):
    """Every record as the ``tfrecord`` package reads it, in file order (``shard=(0, 1)``:
    with an index and no shard it starts at a random record)."""
    from tfrecord.reader import tfrecord_loader
    return list(tfrecord_loader(path, index, shard=(0, 1) if index else None))


def _as_u64(values):
    return [int(v) for v in np.asarray(values, np.int64).view(np.uint64)]


def _matches(record, s):
    """A record as a foreign reader sees it holds Sample ``s``: the image bytes, the key, the
    labels' float32 bits, id, id2, the original header, the ImageNet class label."""
    assert bytes(record["image/encoded"]) == s.image
    assert _as_u64(record["recordio/key"]) == [s.key]
    assert list(record["recordio/flag"]) == [s.flag]
    assert record["recordio/label"].dtype == np.float32
    assert record["recordio/label"].tobytes() == np.asarray(s.label, "<f4").reshape(-1).tobytes()
    assert (_as_u64(record["recordio/id"]), _as_u64(record["recordio/id2"])) == ([s.id],
                                                                                 [s.id2])


@pytest.mark.formats
def test_the_tfrecord_package_reads_every_record(shards, samples):
    got = []
    for path in shards:
        with_index = _tfrecord_records(path, tfr.index_path_of(path))
        assert len(with_index) == len(_tfrecord_records(path, None))
        got += with_index
    assert len(got) == len(samples)
    for record, s in zip(got, samples):
        _matches(record, s)
        assert ("recordio/header" in record) == (s.head is not None)
        if s.head is not None:
            assert bytes(record["recordio/header"]) == s.head
        if "image/class/label" in record:
            assert list(record["image/class/label"]) == [s.label]


#: protobuf's pure-Python implementation sorts map keys as C++ protobuf (TensorFlow) does, by
#: bytes (upb's deterministic order is its own: a key before its own prefixes); it also makes
#: every NaN the one quiet NaN, so records with NaN labels of other bits are compared in upb.
_SERIALIZE = """
import math, sys
from google.protobuf.internal import api_implementation
from tfrecord import example_pb2
from mxnet_recpack.formats import tfrecord as tfr
assert api_implementation.Type() == "python", api_implementation.Type()
compared = 0
for path in sys.argv[1:]:
    data = open(path, "rb").read()
    for loc in tfr.scan(path):
        record = data[loc.offset + 12:loc.offset + 12 + loc.length]
        example = example_pb2.Example.FromString(record)
        if any(math.isnan(v) for f in example.features.feature.values()
               for v in f.float_list.value):
            continue
        assert example.SerializeToString(deterministic=True) == record, (path, loc)
        compared += 1
print(compared)
"""


@pytest.mark.formats
def test_our_bytes_are_what_protobuf_and_crc32c_make(shards):
    """Our hand-made protobuf is protobuf's own deterministic serialization, and our CRCs
    are those of the crc32c package the tfrecord package writes with."""
    from tfrecord import example_pb2
    from tfrecord.writer import TFRecordWriter
    env = dict(os.environ, PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION="python")
    done = subprocess.run([sys.executable, "-c", _SERIALIZE] + shards, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) == sum(len(tfr.scan(p)) for p in shards) - 2    # 2 with NaNs
    for path in shards:
        data = read(path)
        for loc in tfr.scan(path):
            record = data[loc.offset + 12:loc.offset + 12 + loc.length]
            example = example_pb2.Example.FromString(record)        # upb, the default
            assert example.ByteSize() == len(record)
            assert _plain(decode_example(example.SerializeToString())) == _plain(
                decode_example(record))
            assert data[loc.offset + 8:loc.offset + 12] == TFRecordWriter.masked_crc(
                data[loc.offset:loc.offset + 8])
            end = loc.offset + 12 + loc.length
            assert data[end:end + 4] == TFRecordWriter.masked_crc(record)


def _plain(features):
    return {name: (kind, [bytes(v) for v in values] if kind == BYTES else
                   values.tobytes() if kind == FLOAT else list(values))
            for name, (kind, values) in features.items()}


@pytest.mark.formats
def test_files_the_tfrecord_package_writes(tmp_path, photos):
    from tfrecord.tools.tfrecord2idx import create_index
    from tfrecord.writer import TFRecordWriter
    images = [encode_image(p[::4, ::4], ".jpg" if i % 2 else ".png", 90)
              for i, (_, p) in enumerate(photos[:5])]
    path, index = str(tmp_path / "theirs.tfrecord"), str(tmp_path / "theirs.tfindex")
    writer = TFRecordWriter(path)
    for i, image in enumerate(images):
        writer.write({"image/encoded": (image, "byte"), "image/class/label": (i * 10, "int"),
                      "image/format": (b"jpeg" if i % 2 else b"png", "byte"),
                      "image/filename": (b"%d.jpg" % i, "byte")})
    writer.write({"image/encoded": (images[0], "byte"), "image/class/label": ([1, 0, 1], "int")})
    writer.write({"image/encoded": (images[1], "byte"), "image/class/label": (0.25, "float")})
    writer.close()
    create_index(path, index)
    assert tfr.check(path, index_path=index) == 7
    assert tfr.index_of(path) == read(index)
    got = _all(path, first_key=3)
    assert [(s.key, s.id, s.id2, s.head) for s in got] == [(3 + i, 3 + i, 0, None)
                                                           for i in range(7)]
    assert [s.image for s in got] == images + images[:2]
    assert [s.label for s in got[:5]] == [0.0, 10.0, 20.0, 30.0, 40.0]
    assert got[5].flag == 3 and got[5].label.tolist() == [1, 0, 1]
    assert (got[6].flag, got[6].label) == (0, 0.25)


# -------------------------------------------------------------------------- NVIDIA DALI

def _dali_read(paths, features):
    """Every record as DALI's ``fn.readers.tfrecord`` reads it with our index files, in order:
    a dict of numpy arrays a record."""
    from nvidia.dali import fn, pipeline_def

    names = sorted(features)

    @pipeline_def(batch_size=4, num_threads=1, device_id=None, prefetch_queue_depth=1)
    def pipe():
        out = fn.readers.tfrecord(path=list(paths), index_path=[tfr.index_path_of(p)
                                                                 for p in paths],
                                  features=features, random_shuffle=False, name="reader")
        return tuple(out[n] for n in names)

    p = pipe()
    p.build()
    n = p.epoch_size("reader")
    got = []
    while len(got) < n:
        outs = p.run()
        got += [{name: np.array(o.at(i)) for name, o in zip(names, outs)}
                for i in range(len(outs[0]))]
    return got[:n]


@pytest.mark.dali
def test_dali_reads_every_record_with_our_index(shards, samples):
    import nvidia.dali.tfrecord as tfrec
    int64 = tfrec.FixedLenFeature([1], tfrec.int64, 0)
    got = _dali_read(shards, {
        "image/encoded": tfrec.FixedLenFeature((), tfrec.string, ""),
        "recordio/key": int64, "recordio/flag": int64, "recordio/id": int64,
        "recordio/id2": int64, "recordio/label": tfrec.VarLenFeature(tfrec.float32, 0.0)})
    assert len(got) == len(samples)
    for record, s in zip(got, samples):
        _matches(record, s)


@pytest.mark.dali
def test_dali_reads_a_classification_set_by_the_imagenet_features(tmp_path, photos):
    import cv2
    import nvidia.dali.tfrecord as tfrec
    from nvidia.dali import fn, pipeline_def, types
    images = [encode_image(p[::3, ::3], ".png" if i % 3 == 0 else ".jpg", 90)
              for i, (_, p) in enumerate(photos)]
    samples = [sample_from_payload(k, pack_record(k % 4, k, img)) for k, img in
               enumerate(images)]
    shards = _write_shards(tmp_path, samples, per_shard=4)
    int64 = tfrec.FixedLenFeature([1], tfrec.int64, -1)
    features = {"image/encoded": tfrec.FixedLenFeature((), tfrec.string, ""),
                "image/format": tfrec.FixedLenFeature((), tfrec.string, ""),
                "image/class/label": int64, "image/height": int64, "image/width": int64}
    got = _dali_read(shards, features)
    assert len(got) == len(samples)

    @pipeline_def(batch_size=4, num_threads=1, device_id=None, prefetch_queue_depth=1)
    def decoding():
        out = fn.readers.tfrecord(path=shards, index_path=[tfr.index_path_of(p) for p in shards],
                                  features=features, random_shuffle=False, name="reader")
        return fn.decoders.image(out["image/encoded"], device="cpu", output_type=types.RGB)

    pipe = decoding()
    pipe.build()
    pixels = []
    while len(pixels) < len(samples):
        out, = pipe.run()
        pixels += [np.array(out.at(i)) for i in range(len(out))]
    for record, s, rgb in zip(got, samples, pixels):
        assert bytes(record["image/encoded"]) == s.image
        assert list(record["image/class/label"]) == [s.label]
        assert bytes(record["image/format"]) == (b"PNG" if s.image[:4] == b"\x89PNG" else b"JPEG")
        assert [int(record["image/height"][0]), int(record["image/width"][0])] == \
            list(rgb.shape[:2])
        ours = cv2.cvtColor(cv2.imdecode(np.frombuffer(s.image, np.uint8), cv2.IMREAD_COLOR),
                            cv2.COLOR_BGR2RGB)
        if s.image[:4] == b"\x89PNG":
            np.testing.assert_array_equal(rgb, ours)
        else:
            assert np.abs(rgb.astype(int) - ours).mean() < 1.5


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_any_changed_record_reads_or_gives_a_record_format_error(data):
    """Bytes changed before the CRC was taken (a buggy writer): a Sample, or an error that
    names the record; never another exception."""
    s = data.draw(_samples_st())
    record = tfr.encode(s)[12:-4]
    at = data.draw(st.integers(0, len(record) - 1))
    cut = data.draw(st.integers(0, 4))
    changed = record[:at] + data.draw(st.binary(min_size=0, max_size=4)) + record[at + cut:]
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "m.tfrecord")
        with open(path, "wb") as f:
            f.write(frame_chunks([changed]))
        try:
            tfr.check(path, default_label=0)
        except RecordFormatError as exc:
            assert exc.offset == 0 and "record 0: " in str(exc)
