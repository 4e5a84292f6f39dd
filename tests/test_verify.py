"""verify agrees with MXNet's decoder and catches any damaged byte: checksums, damaged JPEG
data, duplicate keys, formats MXNet cannot read; label-only records and keys that differ from
ids are fine. Damaged files can be salvaged into a new, whole pair."""
import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

import mxnet_recpack as rp
from helpers import idx_of, read, recpack_cmd, write_arrays, write_lst
from mxnet_recpack import RecordDataset, RecordFileWriter


def offsets(rec):
    return [int(line.split("\t")[1]) for line in open(idx_of(rec))]


def damage(rec, at, data):
    blob = bytearray(read(rec))
    blob[at:at + len(data)] = data
    open(rec, "wb").write(bytes(blob))


@pytest.fixture
def photos_rec(tmp_path, photos):
    """JPEG records of real photos (big enough for 64 bytes to land in entropy data)."""
    return write_arrays(tmp_path / "p.rec", [p[:200, :260] for _, p in photos[:4]],
                        [0, 1, 2, 3], encoding=".jpg")


def test_64_damaged_bytes_in_a_jpeg_are_found_with_and_without_checksums(photos_rec):
    start = offsets(photos_rec)[1] + 8 + 24
    damage(photos_rec, start + 3000, bytes(range(64)))
    with_sums = rp.verify(photos_rec)
    assert with_sums.checksums == "mismatch"
    assert any("do not match their CRC32C" in p["message"] for p in with_sums.problems)
    os.remove(photos_rec[:-4] + ".crc")
    plain = rp.verify(photos_rec)
    assert [p["key"] for p in plain.problems] == [1]
    assert "damaged JPEG data: libjpeg says 'Corrupt JPEG data" in plain.problems[0]["message"]
    accepted = rp.verify(photos_rec, accept_jpeg_warnings=True)
    assert accepted.problems == [] and "Corrupt JPEG data" in accepted.notes[0]


@pytest.mark.parametrize("where", ["png pixel", "label", "npy float", "frame padding"])
def test_any_changed_byte_is_found_by_the_checksums(tmp_path, where):
    rec = str(tmp_path / "c.rec")
    with RecordFileWriter(rec, encoding=".png") as w:
        w.write(np.full((8, 8, 3), 9, np.uint8), [1, 2, 3], key=0)
    with RecordFileWriter(str(tmp_path / "t.rec"), encoding=".npy") as w:
        w.write(np.arange(12, dtype=np.float32).reshape(3, 2, 2), 0, key=0)
    if where == "npy float":
        rec = str(tmp_path / "t.rec")
    size = os.path.getsize(rec)
    at = {"png pixel": size - 40, "label": 8 + 24, "npy float": size - 8,
          "frame padding": size - 1}[where]
    if where == "frame padding" and size % 4 == 0 and read(rec)[-1:] != b"\0":
        pytest.fail("the record needs padding for this case")
    blob = bytearray(read(rec))
    blob[at] ^= 0x01
    open(rec, "wb").write(bytes(blob))
    result = rp.verify(rec, quick=True)
    assert result.checksums == "mismatch" and result.problems


def test_an_index_listing_a_key_twice_fails(tmp_path):
    rec = write_arrays(tmp_path / "d.rec", [np.zeros((8, 8, 3), np.uint8)] * 3, [0, 1, 2])
    lines = open(idx_of(rec)).read().splitlines()
    lines[2] = "0\t%s" % lines[2].split("\t")[1]
    open(idx_of(rec), "w").write("\n".join(lines) + "\n")
    result = rp.verify(rec)
    assert any("lists key 0 2 times" in p["message"] for p in result.problems)


def gif_and_webp():
    """8 x 8 GIF and WebP images (and a JPEG of the same size): an 8 x 8 ``data_shape`` fits
    them all, so a reader that fails on one fails on its format alone."""
    import io
    from PIL import Image  # scikit-image's dependency: OpenCV writes no GIF
    pixels = np.full((8, 8, 3), 50, np.uint8)
    gif = io.BytesIO()
    Image.fromarray(pixels).save(gif, format="GIF")
    webp, jpg = (cv2.imencode(ext, pixels)[1].tobytes() for ext in (".webp", ".jpg"))
    return {"gif": gif.getvalue(), "webp": webp, "jpg": jpg}


def test_formats_mxnet_cannot_decode_are_flagged_and_skipped_by_pass_through(tmp_path):
    for name, data in gif_and_webp().items():
        (tmp_path / ("x." + name)).write_bytes(data)
    write_lst(tmp_path / "d.lst", [(0, 0, "x.jpg"), (1, 1, "x.gif"), (2, 2, "x.webp")])
    rec = rp.im2rec(str(tmp_path / "d.lst"), None, {"root": str(tmp_path),
                                                    "pass_through": True}, str(tmp_path / "d"))
    assert list(RecordDataset(rec).keys) == [0]
    report = [json.loads(line) for line in open(tmp_path / "d.failures.jsonl")]
    assert [(r["key"], "MXNet's decoder cannot read this format" in r["message"])
            for r in report] == [(1, True), (2, True)]
    anyway = rp.im2rec(str(tmp_path / "d.lst"), None, {"root": str(tmp_path),
                                                       "pass_through": True,
                                                       "any_format": True}, str(tmp_path / "e"))
    result = rp.verify(anyway)
    assert sorted(p["key"] for p in result.problems) == [1, 2]
    assert all("MXNet's decoder (ImageRecordIter, ImageRecordDataset) cannot read this "
               "format" in p["message"] for p in result.problems)


@pytest.mark.mxnet
@pytest.mark.parametrize("fmt", ["gif", "webp", "jpg"])
def test_mxnets_own_reader_dies_on_what_verify_flags(tmp_path, fmt):
    """The agreement checked from MXNet's side: ImageRecordIter cannot get through a record
    that verify fails (it dies, with SIGFPE or an error), and gets through the same record
    as a JPEG of the same size, which verify passes."""
    rec = str(tmp_path / "f.rec")
    with RecordFileWriter(rec) as w:
        w.write(gif_and_webp()[fmt], 0)
    flagged = bool(rp.verify(rec).problems)
    code = ("import mxnet as mx, sys\n"
            "it = mx.io.ImageRecordIter(path_imgrec=sys.argv[1], data_shape=(3, 8, 8), "
            "batch_size=1)\n"
            "for b in it: print(b.data[0].asnumpy().mean())\n")
    result = subprocess.run([sys.executable, "-c", code, rec], capture_output=True, timeout=120)
    assert flagged == (fmt != "jpg")
    assert (result.returncode != 0) == flagged, result.stderr
    if not flagged:  # the control: the 50-grey JPEG came through, decoded
        assert abs(float(result.stdout.split()[-1]) - 50) < 2


def test_label_only_records_and_keys_that_differ_from_ids(tmp_path):
    rec = str(tmp_path / "l.rec")
    with RecordFileWriter(rec) as w:
        w.write(np.zeros((8, 8, 3), np.uint8), 1, key=0)
        w.write(b"", [3, 4], key=1)
        w.write(b"", [1, 2], key=2)
    result = rp.verify(rec)
    assert result.problems == [] and (result.images, result.label_only) == (1, 2)
    rp.rebuild_index(rec, keys="position")  # rec2idx.py's numbering: 0, 1, 2
    with RecordFileWriter(str(tmp_path / "m.rec")) as w:
        w.write(np.zeros((8, 8, 3), np.uint8), 1, key=5)
    os.replace(tmp_path / "m.rec", rec)
    os.replace(tmp_path / "m.idx", idx_of(rec))
    os.replace(tmp_path / "m.crc", str(tmp_path / "l.crc"))
    open(idx_of(rec), "w").write("0\t0\n")
    noted = rp.verify(rec)
    assert noted.problems == [] and "1 index keys differ from their records' header ids" in \
        noted.notes[0]


def test_a_sidecar_another_tool_made_stale_is_reported(tmp_path):
    rec = write_arrays(tmp_path / "s.rec", [np.zeros((8, 8, 3), np.uint8)] * 2, [0, 1])
    ok, jpg = cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8))
    end = os.path.getsize(rec)
    with open(rec, "ab") as f:  # another tool appends a record, and knows no sidecar
        f.write(rp.encode_record(rp.pack_record(2, 2, jpg.tobytes())))
    with open(idx_of(rec), "a") as f:
        f.write("2\t%d\n" % end)
    result = rp.verify(rec)
    assert result.problems == [] and result.checksums == "stale"
    assert "s.crc is stale: it describes a .rec of" in result.notes[0]


def test_quick_parallel_and_json_give_the_same_verdicts(photos_rec, tmp_path):
    start = offsets(photos_rec)[2] + 8 + 24
    damage(photos_rec, start + 2500, bytes(64))
    os.remove(photos_rec[:-4] + ".crc")
    one, two = rp.verify(photos_rec), rp.verify(photos_rec, num_threads=2)
    assert one.problems == two.problems and [p["key"] for p in one.problems] == [2]
    assert rp.verify(photos_rec, quick=True).problems == []  # the headers are fine
    code, out, _ = (lambda r: (r.returncode, r.stdout, r.stderr))(subprocess.run(
        recpack_cmd("verify", "--json", "--num-thread", "2", photos_rec), capture_output=True,
        text=True))
    data = json.loads(out)
    assert code == 1 and data["ok"] is False and data["images"] == 4
    assert data["problems"][0]["key"] == 2


def test_salvage_makes_a_whole_pair_of_a_truncated_file(tmp_path, photos_rec, real_reader):
    size = os.path.getsize(photos_rec)
    os.truncate(photos_rec, size - 500)
    code = subprocess.run(recpack_cmd("index", photos_rec), capture_output=True, text=True)
    assert code.returncode == 1 and "recpack index --salvage" in code.stderr
    code = subprocess.run(recpack_cmd("index", "--salvage", photos_rec), capture_output=True,
                          text=True)
    assert code.returncode == 0 and "3 intact records of" in code.stdout
    out = str(tmp_path / "p.salvaged.rec")
    assert [r[0] for r in real_reader(out)] == [0.0, 1.0, 2.0]
    assert rp.verify(out).problems == [] and os.path.getsize(photos_rec) == size - 500


def test_a_fifo_in_a_list_is_refused_without_hanging(tmp_path):
    os.mkfifo(tmp_path / "pipe.jpg")
    ok, jpg = cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8))
    (tmp_path / "a.jpg").write_bytes(jpg.tobytes())
    write_lst(tmp_path / "d.lst", [(0, 0, "pipe.jpg"), (1, 0, "a.jpg")])
    result = subprocess.run(recpack_cmd("im2rec", tmp_path / "d", tmp_path), capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "not a regular file" in result.stderr
    assert list(RecordDataset(str(tmp_path / "d.rec")).keys) == [1]


@pytest.mark.mxnet
@pytest.mark.parametrize("chunk", [64, 1000, 4096, 1 << 16])
def test_the_chunked_walk_gives_every_record_mxnet_wrote_whatever_the_chunk_size(
        tmp_path, monkeypatch, chunk):
    """verify reads the file in chunks; records cross their boundaries at every position, some
    split into several frames by the magic word (as MXNet's writer splits them)."""
    import mxnet as mx
    from mxnet_recpack.format import checks
    rng = np.random.default_rng(chunk)
    magic = (0xCED7230A).to_bytes(4, "little")
    payloads = []
    for i in range(300):
        body = bytearray(rng.integers(0, 256, int(rng.integers(0, 3000)), dtype=np.uint8))
        if i % 7 == 0 and len(body) >= 8:  # the magic word at an aligned position: frames
            at = int(rng.integers(0, len(body) // 4 - 1)) * 4
            body[at:at + 4] = magic
        payloads.append(bytes(body))
    rec = str(tmp_path / "m.rec")
    w = mx.recordio.MXRecordIO(rec, "w")
    for p in payloads:
        w.write(p)
    w.close()
    r = mx.recordio.MXRecordIO(rec, "r")
    assert [r.read() for _ in payloads] == payloads
    r.close()
    blob = read(rec)
    monkeypatch.setattr(checks, "_CHUNK", chunk)
    with open(rec, "rb") as f:
        got = list(checks.walk(f, len(blob), path=rec))
    assert [g[4] for g in got] == [None] * len(payloads)
    assert [bytes(g[2]) for g in got] == payloads
    assert [bytes(g[3]) for g in got] == [blob[g[0]:g[1]] for g in got]
    assert got[0][0] == 0 and got[-1][1] == len(blob)
    assert all(a[1] == b[0] for a, b in zip(got, got[1:]))
