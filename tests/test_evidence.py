"""Corruption is never certified: verify and salvage use every per-record checksum that still
matches its record (matched by where the record starts, so a damaged stretch does not shift the
others, and a sidecar that no longer describes the whole file still vouches for what it lists);
an index whose keys were swapped or renumbered fails verify; salvage never writes a checksum
for a record it could not check; index under a file-size limit says so with the file and the
step, and leaves nothing behind. Files are read back with MXNet's readers or DALI
(``real_reader``)."""
import os
import resource
import subprocess

import cv2
import numpy as np
import pytest

import mxnet_recpack as rp
from helpers import idx_of, read, recpack_cmd, write_arrays
from mxnet_recpack.format.checksums import read_checksums


def offsets(rec):
    return [int(line.split("\t")[1]) for line in open(idx_of(rec))]


@pytest.fixture
def jpegs(tmp_path, photos):
    """Eight JPEG records of real photos, keys 0-7 (each big enough to hold damage inside)."""
    images = [p[y:y + 160, x:x + 200] for _, p in photos[:4] for y, x in ((0, 0), (40, 60))]
    return write_arrays(tmp_path / "p.rec", images, list(range(8)), encoding=".jpg")


def flip(rec, at):
    blob = bytearray(read(rec))
    blob[at] ^= 0x10
    open(rec, "wb").write(bytes(blob))


def test_salvage_of_a_cut_file_leaves_out_a_record_its_checksum_condemns(jpegs, real_reader):
    starts = offsets(jpegs)
    flip(jpegs, starts[5] + 8 + 24 + 2000)  # one bit inside record 5's entropy data
    os.truncate(jpegs, os.path.getsize(jpegs) - 100)  # ... and the tail cut short
    result = rp.salvage(jpegs)
    out = result["path"]
    reasons = {d["offset"]: d["reason"] for d in result["damaged"]}
    assert "do not match the CRC32C the checksum sidecar recorded" in reasons[starts[5]]
    assert result["kept"] == result["checked"] == 6  # 0-4 and 6, each checked
    assert [r[0] for r in real_reader(out)] == [0.0, 1.0, 2.0, 3.0, 4.0, 6.0]
    checked = rp.verify(out)
    assert checked.problems == [] and checked.checksums == "match" and checked.checked == 6


def test_salvage_without_a_sidecar_vouches_for_nothing(jpegs):
    os.remove(jpegs[:-4] + ".crc")
    os.truncate(jpegs, os.path.getsize(jpegs) - 100)
    result = subprocess.run(recpack_cmd("index", "--salvage", jpegs), capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr
    assert "no checksum sidecar, so no record could be checked against one: the new pair has " \
        "none" in result.stdout
    out = jpegs[:-4] + ".salvaged.rec"
    assert not os.path.exists(out[:-4] + ".crc")
    assert rp.verify(out).checksums == "none"


def test_damage_mid_file_is_reported_where_it_is_not_after_it(jpegs):
    starts = offsets(jpegs)
    blob = bytearray(read(jpegs))
    blob[starts[4] - 1500:starts[4] + 1500] = bytes(3000)  # record 3's end, record 4's head
    open(jpegs, "wb").write(bytes(blob))
    result = rp.verify(jpegs, quick=True)
    assert result.problems
    assert all(starts[3] <= p["offset"] < starts[5] for p in result.problems
               if p["offset"] is not None), result.problems
    messages = " ".join(p["message"] for p in result.problems)
    assert "record changed since it was written" in messages  # record 3: its CRC
    assert "no longer holds whole" in messages  # record 4: gone
    assert result.checked == 6  # 0-2 and 5-7: found whole after the damage, checksums match


def _swap_lines(rec, a, b):
    lines = open(idx_of(rec)).read().splitlines()
    ka, oa = lines[a].split("\t")
    kb, ob = lines[b].split("\t")
    lines[a], lines[b] = "%s\t%s" % (kb, oa), "%s\t%s" % (ka, ob)
    open(idx_of(rec), "w").write("\n".join(lines) + "\n")


@pytest.mark.parametrize("sidecar", [True, False])
def test_swapped_or_renumbered_index_keys_fail_verify(jpegs, sidecar):
    if not sidecar:
        os.remove(jpegs[:-4] + ".crc")
    _swap_lines(jpegs, 2, 5)  # readers by key would get each other's record
    result = rp.verify(jpegs, quick=True)
    wrong = sorted(p["key"] for p in result.problems)
    assert wrong == [2, 5] and "rebuild it with `recpack index" in result.problems[0]["message"]
    assert rp.rebuild_index(jpegs) == 8
    assert rp.verify(jpegs, quick=True).problems == []
    lines = open(idx_of(jpegs)).read().splitlines()
    lines[6] = "70\t" + lines[6].split("\t")[1]  # one key renumbered
    open(idx_of(jpegs), "w").write("\n".join(lines) + "\n")
    assert [p["key"] for p in rp.verify(jpegs, quick=True).problems] == [70]


def test_an_index_by_position_is_a_note_not_a_problem(tmp_path):
    rec = write_arrays(tmp_path / "k.rec", [np.zeros((8, 8, 3), np.uint8)] * 4, [0, 1, 2, 3])
    with rp.RecordFileWriter(str(tmp_path / "ids.rec")) as w:
        for key in (10, 20, 30):
            w.write(np.zeros((8, 8, 3), np.uint8), 0, key=key)
    rec = str(tmp_path / "ids.rec")
    assert rp.rebuild_index(rec, keys="position") == 3  # rec2idx.py's numbering, on purpose
    result = rp.verify(rec)
    assert result.problems == [] and "numbers records by position" in result.notes[0]
    assert read_checksums(rec[:-4] + ".crc").keys.tolist() == [0, 1, 2]  # what index recorded


def test_an_appended_file_whose_index_was_changed_is_refused(jpegs):
    _swap_lines(jpegs, 1, 2)
    before = read(jpegs)
    with pytest.raises(rp.IndexFormatError, match=r"p\.idx:2: the index lists key 2 at byte \d+, "
                                                  r"where the checksum sidecar recorded key 1"):
        rp.RecordFileWriter(jpegs, append=True)
    assert read(jpegs) == before


def _limit_file_size(limit):
    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


def test_index_under_a_file_size_limit_says_so_and_leaves_nothing(tmp_path):
    ok, jpg = cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8))
    rec = str(tmp_path / "big.rec")
    with rp.RecordFileWriter(rec) as w:
        for key in range(400):
            w.write(jpg.tobytes(), 0, key=10 ** 12 + key)  # long keys: an .idx of 10 kB
    old = read(idx_of(rec))
    os.remove(rec[:-4] + ".crc")
    # a real limit (RLIMIT_FSIZE, as `ulimit -f` sets): writing past it fails with EFBIG
    result = subprocess.run(recpack_cmd("index", "--keys", "position", rec), capture_output=True,
                            text=True, preexec_fn=_limit_file_size(4096))
    assert result.returncode == 1, result.stderr
    assert "big.rec: could not write the index: file too large (while writing the index " in \
        result.stderr
    assert "the previous index is intact: raise the file-size limit" in result.stderr
    assert read(idx_of(rec)) == old
    assert sorted(os.listdir(tmp_path)) == ["big.idx", "big.rec"]
