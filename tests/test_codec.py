"""The codec against MXNet's own recordio: same bytes written, same records read, damage
reported."""
import io
import os
import re
import struct

import mxnet as mx
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from mxnet_recpack import (IndexFormatError, RecordFile, RecordFormatError, RecordReader,
                           encode_record, pack_record, read_index, unpack_record)
from mxnet_recpack.format.index import format_index_line
from mxnet_recpack.format.names import index_path_for
from mxnet_recpack.format.framing import MAGIC_BYTES

pytestmark = pytest.mark.mxnet  # read back with MXNet's own readers

_SETTINGS = settings(max_examples=60, deadline=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture])

# Payloads: runs of short random chunks and magic words, so the magic lands at aligned and
# unaligned offsets, at the start, the end, back to back.
_chunk = st.one_of(st.just(MAGIC_BYTES), st.binary(min_size=0, max_size=7))
payloads = st.one_of(st.binary(min_size=0, max_size=7),
                     st.lists(_chunk, max_size=12).map(b"".join),
                     st.binary(min_size=0, max_size=300))


def mx_write(tmp_path, records):
    """Write (key, payload) records with MXNet's MXIndexedRecordIO; return (rec bytes, idx text)."""
    rec, idx = str(tmp_path / "mx.rec"), str(tmp_path / "mx.idx")
    w = mx.recordio.MXIndexedRecordIO(idx, rec, "w")
    for key, payload in records:
        w.write_idx(key, payload)
    w.close()
    with open(rec, "rb") as f, open(idx) as g:
        return f.read(), g.read()


@_SETTINGS
@given(st.lists(payloads, min_size=1, max_size=8))
def test_frames_and_index_are_byte_identical_to_mxnet(tmp_path, records):
    ref_rec, ref_idx = mx_write(tmp_path, list(enumerate(records)))
    mine, lines, offset = [], [], 0
    for key, payload in enumerate(records):
        frame = encode_record(payload)
        assert len(frame) % 4 == 0
        lines.append(format_index_line(key, offset))
        mine.append(frame)
        offset += len(frame)
    assert b"".join(mine) == ref_rec
    assert "".join(lines) == ref_idx


@_SETTINGS
@given(st.lists(payloads, min_size=1, max_size=8))
def test_reader_reads_what_mxnet_wrote(tmp_path, records):
    ref_rec, _ = mx_write(tmp_path, list(enumerate(records)))
    got = list(RecordReader(io.BytesIO(ref_rec)))
    assert [p for _, p in got] == records
    # and MXNet reads what we wrote
    path = tmp_path / "ours.rec"
    path.write_bytes(b"".join(encode_record(p) for p in records))
    r = mx.recordio.MXRecordIO(str(path), "r")
    assert [r.read() for _ in records] == records
    assert r.read() is None
    r.close()


@pytest.mark.parametrize("n", range(8))
@pytest.mark.parametrize("magic_at", [None, 0, 4])
def test_short_payloads_and_aligned_magic(tmp_path, n, magic_at):
    payload = bytearray(b"\x01\x02\x03\x04\x05\x06\x07"[:n])
    if magic_at is not None:
        payload[magic_at:magic_at] = MAGIC_BYTES
    payload = bytes(payload)
    ref_rec, _ = mx_write(tmp_path, [(0, payload)])
    assert encode_record(payload) == ref_rec
    assert list(RecordReader(io.BytesIO(ref_rec)))[0][1] == payload


def test_magic_splits_into_continuation_frames():
    payload = b"abcd" + MAGIC_BYTES + b"efgh" + MAGIC_BYTES + b"ij"
    frame = encode_record(payload)
    heads = [struct.unpack_from("<II", frame, o) for o in (0, 12, 24)]
    assert [(m, l >> 29, l & ((1 << 29) - 1)) for m, l in heads] == [
        (0xCED7230A, 1, 4), (0xCED7230A, 2, 4), (0xCED7230A, 3, 2)]
    assert len(frame) == 36  # 3 heads + 4 + 4 + 2 bytes + 2 padding


@_SETTINGS
@given(label=st.one_of(st.integers(-1000, 1000), st.floats(-1e6, 1e6, width=32),
                       st.lists(st.floats(-1e6, 1e6, width=32), min_size=1, max_size=9)),
       key=st.integers(0, 2 ** 64 - 1), data=st.binary(max_size=40))
def test_pack_record_matches_mx_recordio_pack(label, key, data):
    ref = mx.recordio.pack(mx.recordio.IRHeader(0, label, key, 0), data)
    assert pack_record(label, key, data) == ref
    header, body = unpack_record(ref)
    ref_header, ref_body = mx.recordio.unpack(ref)
    assert bytes(body) == ref_body == data
    assert (header.flag, header.id, header.id2) == (ref_header.flag, ref_header.id, 0)
    np.testing.assert_array_equal(header.label, ref_header.label)


def test_pack_record_accepts_numpy_and_ndarray_labels():
    ref = mx.recordio.pack(mx.recordio.IRHeader(0, [1, 2, 3], 9, 0), b"x")
    assert pack_record(np.array([1, 2, 3]), 9, b"x") == ref
    assert pack_record(mx.nd.array([1, 2, 3]), 9, b"x") == ref
    assert pack_record(np.float32(2.5), 1, b"") == mx.recordio.pack(
        mx.recordio.IRHeader(0, 2.5, 1, 0), b"")


def test_pack_record_refuses_2d_labels_with_the_detection_layout_hint():
    with pytest.raises(ValueError, match="header_width, object_width"):
        pack_record(np.zeros((2, 5)), 0, b"")
    with pytest.raises(ValueError, match="not numeric"):
        pack_record("cat", 0, b"")
    with pytest.raises(ValueError, match="out of range"):
        pack_record(1, -1, b"")


def test_unpack_record_reports_short_records():
    with pytest.raises(RecordFormatError, match="too short"):
        unpack_record(b"\0" * 10, offset=40, path="x.rec")
    bad = struct.pack("<IfQQ", 3, 0, 1, 0) + b"\0" * 8  # says 3 labels, holds 2
    with pytest.raises(RecordFormatError, match=r"x\.rec, byte offset 40: header says 3 labels"):
        unpack_record(bad, offset=40, path="x.rec")


# ---- damaged files ----------------------------------------------------------------------------

def _sample_file():
    records = [b"", b"a" * 5, MAGIC_BYTES * 2 + b"tail", os.urandom(37)]
    return records, b"".join(encode_record(r) for r in records)


def test_every_truncation_is_reported_with_an_offset():
    records, blob = _sample_file()
    boundaries = set()
    off = 0
    for r in records:
        boundaries.add(off)
        off += len(encode_record(r))
    for cut in range(len(blob)):
        reader = RecordReader(io.BytesIO(blob[:cut]), path="cut.rec")
        if cut in boundaries:
            assert len(list(reader)) == sorted(boundaries).index(cut)
        else:
            with pytest.raises(RecordFormatError, match=r"cut\.rec, byte offset \d+: truncated"):
                list(reader)


def test_bad_magic_and_stray_continuation_frame():
    _, blob = _sample_file()
    with pytest.raises(RecordFormatError, match="byte offset 0: bad magic word"):
        list(RecordReader(io.BytesIO(b"\0" * 4 + blob[4:])))
    stray = struct.pack("<II", 0xCED7230A, (2 << 29) | 4) + b"abcd"
    with pytest.raises(RecordFormatError, match="continuation frame"):
        list(RecordReader(io.BytesIO(stray)))


def test_huge_declared_length_fails_fast_without_allocating():
    blob = struct.pack("<II", 0xCED7230A, (1 << 29) - 1) + b"x" * 16
    with pytest.raises(RecordFormatError, match="declares 536870911 payload bytes but only 16"):
        list(RecordReader(io.BytesIO(blob)))


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_random_corruption_reads_or_raises_clearly(data):
    records, blob = _sample_file()
    blob = bytearray(blob)
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(blob) - 1))
        blob[pos] = data.draw(st.integers(0, 255))
    try:
        got = list(RecordReader(io.BytesIO(bytes(blob))))
    except RecordFormatError as exc:
        assert "byte offset" in str(exc)
    else:
        assert len(got) <= len(blob) // 8


def test_record_file_random_access_and_index_check(tmp_path):
    records = [(7, pack_record(1.0, 7, b"one")), (3, pack_record([1, 2], 3, b"two"))]
    rec_bytes, idx_text = mx_write(tmp_path, records)
    (tmp_path / "a.rec").write_bytes(rec_bytes)
    (tmp_path / "a.idx").write_text(idx_text)
    assert index_path_for(str(tmp_path / "a.rec")) == str(tmp_path / "a.idx")
    with RecordFile(str(tmp_path / "a.rec")) as rf:
        assert rf.keys == [7, 3]
        header, body = rf.read_image(3)
        assert bytes(body) == b"two" and list(header.label) == [1, 2]
    from mxnet_recpack.format.checks import check_pair
    assert list(check_pair(str(tmp_path / "a.rec"))) == [(7, 0), (3, int(idx_text.split()[3]))]
    (tmp_path / "a.idx").write_text(idx_text.splitlines()[0] + "\n")
    with pytest.raises(RecordFormatError, match=r"\d+ bytes follow the last indexed record"):
        check_pair(str(tmp_path / "a.rec"))


@pytest.mark.parametrize("text, message", [
    ("1\t0\n2 8\n", r":2: expected 'key<TAB>offset'"),
    ("x\t0\n", r":1: key and offset must be integers"),
    ("1\t-4\n", r":1: offset -4 is out of range"),
    ("1\t0\n\n", r":2: empty line"),
])
def test_read_index_names_the_bad_line(tmp_path, text, message):
    path = tmp_path / "bad.idx"
    path.write_text(text)
    with pytest.raises(IndexFormatError, match=message):
        read_index(str(path))


@pytest.mark.parametrize("line, message", [
    ("18446744073709551616\t8", r"key 18446744073709551616 is out of range"),  # 2**64
    ("99999999999999999999999\t8", r"key 99999999999999999999999 is out of range"),
    ("-3\t8", r"key -3 is out of range"),
    ("2\t9223372036854775808", r"offset 9223372036854775808 is out of range"),  # 2**63
])
def test_index_keys_and_offsets_out_of_range_are_refused_naming_the_line(tmp_path, line,
                                                                         message):
    """numpy's fast parser saturates what does not fit at 2**64-1, and a negative key wrapped:
    every reader of an .idx (the careful one, the fast one, RecordDataset, verify) refuses the
    line instead, and 2**64-1 itself is a key."""
    from mxnet_recpack import RecordDataset, RecordFileWriter, verify
    from mxnet_recpack.format.index import read_index_arrays
    rec = str(tmp_path / "a.rec")
    with RecordFileWriter(rec) as w:
        w.write(np.zeros((8, 8, 3), np.uint8), 0, key=1)
        w.write(np.ones((8, 8, 3), np.uint8), 0, key=(1 << 64) - 1)
    assert list(read_index_arrays(str(tmp_path / "a.idx")).keys) == [1, (1 << 64) - 1]
    offset = open(tmp_path / "a.idx").read().split()[3]
    (tmp_path / "a.idx").write_text("1\t0\n" + line.replace("\t8", "\t" + offset) + "\n")
    pattern = r"a\.idx:2: " + message + r".*rebuild the index with `recpack index .*a\.rec`"
    for read in (read_index, read_index_arrays, RecordDataset):
        with pytest.raises(IndexFormatError, match=pattern):
            read(str(tmp_path / ("a.rec" if read is RecordDataset else "a.idx")))
    problems = verify(rec, quick=True).problems
    assert len(problems) == 1 and re.search(pattern, problems[0]["message"]), problems


def test_missing_index_says_how_to_rebuild(tmp_path):
    with pytest.raises(FileNotFoundError, match="recpack index"):
        read_index(str(tmp_path / "none.idx"))


@_SETTINGS
@given(labels=st.lists(st.floats(-10, 10, width=32), max_size=3), data=payloads,
       key=st.integers(0, 2 ** 40))
def test_frame_buffers_equal_encode_record(labels, data, key):
    """The writer's zero-copy frames are byte-identical to the joined ones, magic words too."""
    from mxnet_recpack.format.header import record_head
    from mxnet_recpack.format.framing import frame_buffers
    head = record_head(labels if labels else 1.5, key)
    for blob in (data, np.frombuffer(data, np.uint8)):
        assert b"".join(bytes(memoryview(b)) for b in frame_buffers(head, blob)) == \
            encode_record(head + data)
