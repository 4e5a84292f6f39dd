"""Nothing lost: bad inputs skipped and reported, atomic output, kill -9 and resume, append,
index rebuild and verify. Every bad input is built for real; files are read back by MXNet."""
import hashlib
import json
import os
import signal
import subprocess
import time

import cv2
import mxnet as mx
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from mxnet.gluon.data.vision import ImageRecordDataset

import mxnet_recpack as rp
from helpers import keys_of, recpack_cmd, run_all, write_lst
from mxnet_recpack.cli import main as recpack_main
from mxnet_recpack import rebuild_index, verify

pytestmark = pytest.mark.mxnet  # read back with MXNet's own readers


def digest(*paths):
    h = hashlib.sha256()
    for p in paths:
        with open(p, "rb") as f:
            h.update(f.read())
    return h.hexdigest()




def count_with_image_record_iter(rec, shape=(3, 32, 32)):
    it = mx.io.ImageRecordIter(path_imgrec=rec, path_imgidx=rec[:-4] + ".idx", data_shape=shape,
                               batch_size=4, resize=32)
    return sum(4 - b.pad for b in it)


@pytest.fixture(scope="module")
def bad_folder(tmp_path_factory):
    """6 good photos and one of each bad input, with a list naming them all (keys 0-12)."""
    root = tmp_path_factory.mktemp("bad")
    good = rp.samples.make_image_folder(str(root), classes=2, per_class=3, long_side=(80, 120))
    with open(root / good[0], "rb") as f:
        jpeg = f.read()
    (root / "truncated.jpg").write_bytes(jpeg[:len(jpeg) * 2 // 3])
    (root / "empty.jpg").write_bytes(b"")
    (root / "text.jpg").write_text("this is not an image\n")
    ok, bomb = cv2.imencode(".png", np.zeros((9500, 9500), np.uint8))  # 90.25 Mpx > Pillow's
    (root / "bomb.png").write_bytes(bomb.tobytes())
    (root / "folder.jpg").mkdir()
    bad = {"missing.jpg": "image file not found", "truncated.jpg": "truncated JPEG",
           "empty.jpg": "empty (zero-byte) file", "text.jpg": "not",
           "bomb.png": "more than the max_pixels limit of 89478485",
           "folder.jpg": "is a directory, not a regular file: refused as an image file"}
    names = good[:3] + sorted(bad) + good[3:]
    rows = [(k, k % 2, n) for k, n in enumerate(names)]
    return str(root), rows, bad


@pytest.mark.parametrize("mode", ["decode", "pass_through"])
def test_bad_images_are_skipped_logged_and_reported(tmp_path, bad_folder, mode):
    root, rows, bad = bad_folder
    write_lst(tmp_path / "data.lst", rows)
    flags = ["--pass-through"] if mode == "pass_through" else ["--resize", "48"]
    code, out, err = run_all([recpack_cmd("im2rec", "--num-thread", "2", *flags,
                                          tmp_path / "data", root)])[0]
    assert code == 0, err
    good_keys = [k for k, _, n in rows if n not in bad]
    assert keys_of(str(tmp_path / "data.rec")) == good_keys
    assert count_with_image_record_iter(str(tmp_path / "data.rec")) == len(good_keys)
    report = [json.loads(l) for l in (tmp_path / "data.failures.jsonl").read_text().splitlines()]
    by_name = {os.path.basename(r["source"]): r for r in report}
    assert sorted(by_name) == sorted(bad)
    for name, reason in bad.items():
        entry = by_name[name]
        assert entry["key"] == [k for k, _, n in rows if n == name][0]
        assert reason in entry["message"], (name, entry)
        assert name in err  # logged with the path...
    assert "skipped %d bad image(s)" % len(bad) in out  # ...and summarised
    assert "%d records" % len(good_keys) in out


def test_max_failures_stops_the_run_and_keeps_the_old_file(tmp_path, bad_folder):
    root, rows, bad = bad_folder
    write_lst(tmp_path / "data.lst", rows)
    old = tmp_path / "data.rec"
    rp.ArrayDataset(np.zeros((2, 8, 8, 3), np.uint8)).to_recordio(str(old))
    before = digest(old, tmp_path / "data.idx")
    code, out, err = run_all([recpack_cmd("im2rec", "--max-failures", "2", tmp_path / "data",
                                          root)])[0]
    assert code == 1
    assert "3 of 12 items failed, more than max_failures=2 allows" in err
    assert "data.failures.jsonl" in err
    assert digest(old, tmp_path / "data.idx") == before
    assert len((tmp_path / "data.failures.jsonl").read_text().splitlines()) == 3
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".partial")]
    # a fraction of the list: 6 bad of 12 = 0.5 > 0.4
    with pytest.raises(rp.TooManyFailuresError, match=r"items failed, more than "
                                                      r"max_failures=0.4") as info:
        rp.im2rec(str(tmp_path / "data.lst"), None, {"root": root, "max_failures": 0.4})
    assert info.value.report_path == str(tmp_path / "data.failures.jsonl")
    assert digest(old, tmp_path / "data.idx") == before
    # at or under the threshold the run completes
    rp.im2rec(str(tmp_path / "data.lst"), None, {"root": root, "max_failures": 6})
    assert len(keys_of(str(old))) == 6


# ---- kill -9 and resume ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def slow_job(tmp_path_factory):
    """A list whose PNG-9 packing takes a few seconds: long enough to kill mid-way."""
    root = tmp_path_factory.mktemp("slow")
    files = rp.samples.make_image_folder(str(root), classes=2, per_class=80,
                                         long_side=(400, 560), seed=5)
    rows = [(k * 3 + 1, k % 2, f) for k, f in enumerate(files)]
    rows.insert(40, (10000, 0, "missing.jpg"))  # a failure before the kill point
    return str(root), rows


def wait_for_partial(proc, partial, size, timeout=120):
    """Wait until the running ``proc`` has written ``size`` bytes of partial output."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if partial.exists() and partial.stat().st_size > size:
            break
        time.sleep(0.01)
    assert proc.poll() is None, "the run finished before it could be interrupted"


def holders(path):
    """Pids of processes that have ``path`` open (Linux /proc)."""
    target, pids = os.path.realpath(path), []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fds = os.listdir("/proc/%s/fd" % pid)
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink("/proc/%s/fd/%s" % (pid, fd)) == target:
                    pids.append(int(pid))
                    break
            except OSError:
                pass
    return pids


def _flags(root):
    return ["--encoding", ".png", "--quality", "9", "--num-thread", "2", "--batch-size", "24",
            "--inter-method", "4", "--resize", "300"]


@pytest.mark.slow
def test_sigkill_then_resume_is_byte_identical(tmp_path, slow_job):
    root, rows = slow_job
    ref, run = tmp_path / "ref", tmp_path / "run"
    for d in (ref, run):
        d.mkdir()
        write_lst(d / "data.lst", rows)
    (run / "data.rec").write_bytes(b"an older file that must survive")
    (run / "data.idx").write_text("0\t0\n")
    before = digest(run / "data.rec", run / "data.idx")
    proc = subprocess.Popen(recpack_cmd("im2rec", "-q", *_flags(root), run / "data", root),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    partial = run / "data.rec.pack.partial"
    wait_for_partial(proc, partial, 6_000_000)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # its DataLoader workers die with it at once (not after draining their queued batches):
    # nothing keeps the partial output open, or locked against the resume
    deadline = time.monotonic() + 0.5
    while holders(partial) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert holders(partial) == []
    assert digest(run / "data.rec", run / "data.idx") == before  # final files untouched
    assert partial.exists()
    results = run_all([recpack_cmd("im2rec", "-q", *_flags(root), ref / "data", root),
                       recpack_cmd("im2rec", "-q", "--resume", *_flags(root), run / "data",
                                   root)])
    for code, _, err in results:
        assert code == 0, err
    for name in ("data.rec", "data.idx", "data.failures.jsonl"):
        assert (run / name).read_bytes() == (ref / name).read_bytes(), name
    assert sorted(os.listdir(run)) == sorted(os.listdir(ref))
    assert len(keys_of(str(run / "data.rec"))) == len(rows) - 1


@pytest.mark.slow
def test_sigterm_keeps_partial_for_resume_and_refuses_other_options(tmp_path, slow_job):
    root, rows = slow_job
    write_lst(tmp_path / "data.lst", rows[:60])
    proc = subprocess.Popen(recpack_cmd("im2rec", "-q", *_flags(root), tmp_path / "data", root),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    partial = tmp_path / "data.rec.pack.partial"
    wait_for_partial(proc, partial, 2_000_000)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "continue with --resume" in err
    assert partial.exists() and not (tmp_path / "data.rec").exists()
    assert recpack_main(["im2rec", "-q", "--resume", "--resize", "100", str(tmp_path / "data"),
                         root]) == 1  # different options: refused, nothing changed
    assert partial.exists()
    assert recpack_main(["im2rec", "-q", "--resume", *_flags(root), str(tmp_path / "data"),
                         root]) == 0
    assert keys_of(str(tmp_path / "data.rec")) == [k for k, _, _ in rows[:60] if k != 10000]


# ---- append ------------------------------------------------------------------------------------

def test_append_generic_dataset_continues_keys(tmp_path, photos):
    rec = str(tmp_path / "a.rec")
    first = rp.ArrayDataset([p[:40, :50] for _, p in photos[:3]], [0, 1, 2])
    first.to_recordio(rec)
    rp.ArrayDataset([p[:40, :50] for _, p in photos[3:5]], [3, 4]).to_recordio(rec, append=True)
    assert keys_of(rec) == [0, 1, 2, 3, 4]
    assert count_with_image_record_iter(rec) == 5
    gluon = ImageRecordDataset(rec)
    assert [gluon[i][1] for i in range(5)] == [0, 1, 2, 3, 4]
    assert verify(rec) == (5, [])


def test_append_list_refuses_existing_keys_before_writing(tmp_path, bad_folder):
    root, rows, bad = bad_folder
    good = [r for r in rows if r[2] not in bad]
    write_lst(tmp_path / "a.lst", good[:3])
    write_lst(tmp_path / "b.lst", good[2:])
    rec = rp.im2rec(str(tmp_path / "a.lst"), None, {"root": root}, str(tmp_path / "out"))
    before = digest(rec, rec[:-4] + ".idx")
    with pytest.raises(rp.DuplicateKeyError,
                       match=r"keys %d are already in this file" % good[2][0]):
        rp.im2rec(str(tmp_path / "b.lst"), None, {"root": root, "append": True},
                  str(tmp_path / "out"))
    assert digest(rec, rec[:-4] + ".idx") == before
    write_lst(tmp_path / "b.lst", good[3:])
    rp.im2rec(str(tmp_path / "b.lst"), None, {"root": root, "append": True},
              str(tmp_path / "out"))
    assert keys_of(rec) == [k for k, _, _ in good]
    assert count_with_image_record_iter(rec) == len(good)
    assert len(ImageRecordDataset(rec)) == len(good)


def test_failed_append_leaves_the_file_as_it_was(tmp_path):
    rec = str(tmp_path / "a.rec")
    rp.ArrayDataset(np.zeros((3, 8, 8, 3), np.uint8)).to_recordio(rec)
    before = digest(rec, rec[:-4] + ".idx")
    with pytest.raises(RuntimeError):
        with rp.RecordFileWriter(rec, append=True) as w:
            w.write(np.ones((8, 8, 3), np.uint8), 1)
            raise RuntimeError("disk on fire")
    assert digest(rec, rec[:-4] + ".idx") == before
    assert sorted(os.listdir(tmp_path)) == ["a.crc", "a.idx", "a.rec"]


@pytest.mark.parametrize("kernel_copy", [True, False])
def test_append_copies_the_existing_file_exactly(tmp_path, monkeypatch, kernel_copy):
    """The existing records are copied in the kernel (copy_file_range), or through a buffer
    where the file system refuses that; either way byte for byte."""
    if not kernel_copy:
        def refuse(*args):
            raise OSError(18, "Invalid cross-device link")
        monkeypatch.setattr(os, "copy_file_range", refuse)
    rec = str(tmp_path / "a.rec")
    rng = np.random.RandomState(5)
    rp.ArrayDataset(rng.randint(0, 255, (40, 64, 64, 3)).astype(np.uint8)).to_recordio(
        rec, encoding=".png")
    before = open(rec, "rb").read()
    with rp.RecordFileWriter(rec, append=True) as w:
        w.write(np.ones((8, 8, 3), np.uint8), 1)
    after = open(rec, "rb").read()
    assert after[:len(before)] == before and len(after) > len(before)
    assert keys_of(rec) == list(range(41))
    gluon = ImageRecordDataset(rec)
    assert len(gluon) == 41 and gluon[40][1] == 1
    np.testing.assert_array_equal(gluon[40][0].asnumpy(), np.ones((8, 8, 3), np.uint8))


def test_append_checks_the_existing_pair(tmp_path):
    rec = str(tmp_path / "a.rec")
    rp.ArrayDataset(np.zeros((3, 8, 8, 3), np.uint8)).to_recordio(rec)
    with open(rec, "ab") as f:
        f.write(b"\x0a\x23\xd7\xce\x10\x00")  # a torn frame after the last record
    with pytest.raises(rp.RecordFormatError, match="6 bytes follow the last indexed record"):
        rp.RecordFileWriter(rec, append=True)
    os.truncate(rec, os.path.getsize(rec) - 6)
    lines = open(rec[:-4] + ".idx").read().splitlines()
    open(rec[:-4] + ".idx", "w").write("\n".join(lines[:1] + lines[2:]) + "\n")
    with pytest.raises(rp.IndexFormatError, match=r"a\.idx:2: key 2 points at byte \d+ but the "
                                                  r"previous record ends at byte \d+"):
        rp.RecordFileWriter(rec, append=True)


# ---- index and verify --------------------------------------------------------------------------

def test_index_rebuild_is_identical_to_the_writers(tmp_path, photos):
    rec = str(tmp_path / "a.rec")
    with rp.RecordFileWriter(rec) as w:
        for key, (_, p) in zip((9, 4, 100), photos):
            w.write(p[:30, :30], key, key=key)
        w.write(rp.format.MAGIC_BYTES * 3 + b"\0", 1, key=7)  # split into continuation frames
    made = open(rec[:-4] + ".idx").read()
    os.remove(rec[:-4] + ".idx")
    assert recpack_main(["index", "-q", rec]) == 0
    assert open(rec[:-4] + ".idx").read() == made
    assert rebuild_index(rec, str(tmp_path / "pos.idx"), keys="position") == 4
    assert [l.split("\t")[0] for l in open(tmp_path / "pos.idx").read().splitlines()] == \
        ["0", "1", "2", "3"]


def test_verify_reports_offsets_and_keys(tmp_path, photos, capsys):
    rec = str(tmp_path / "a.rec")
    rp.ArrayDataset([p[:30, :30] for _, p in photos[:3]], [0, 1, 2]).to_recordio(rec)
    assert recpack_main(["verify", rec]) == 0
    offsets = [int(l.split("\t")[1]) for l in open(rec[:-4] + ".idx")]
    data = bytearray(open(rec, "rb").read())
    start = offsets[1] + 8 + 24  # record 1: frame head, image header, then the JPEG
    data[start + 200:start + 260] = b"\x00" * 60  # damage the JPEG's entropy data...
    data[offsets[2] - 10:offsets[2]] = b"\xff" * 10  # ...and chop record 1's EOI
    open(rec, "wb").write(bytes(data))
    capsys.readouterr()
    assert recpack_main(["verify", rec]) == 1
    out = capsys.readouterr().out
    assert "byte offset %d (key 1): truncated JPEG" % offsets[1] in out


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_random_corruption_never_hangs_or_crashes(tmp_path_factory, data):
    d = tmp_path_factory.mktemp("corrupt")
    rec = str(d / "a.rec")
    if not os.path.exists(rec):
        rp.ArrayDataset(np.random.RandomState(0).randint(0, 255, (4, 16, 16, 3), np.uint8),
                        [0, 1, 2, 3]).to_recordio(rec)
    blob = bytearray(open(rec, "rb").read())
    for _ in range(data.draw(st.integers(1, 3))):
        pos = data.draw(st.integers(0, len(blob) - 1))
        blob[pos] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        blob = blob[:data.draw(st.integers(0, len(blob)))]
    open(rec, "wb").write(bytes(blob))
    n, problems = verify(rec)
    assert all("offset" in p for p in problems)
    try:
        with rp.RecordFile(rec) as rf:
            for key in rf.keys:
                rf.read_image(key)
    except (rp.RecordFormatError, rp.IndexFormatError) as exc:
        assert str(exc)


# ---- lists -------------------------------------------------------------------------------------

@pytest.mark.parametrize("line, message", [
    ("0\tcat.jpg\n", r"data\.lst:2: expected 'index<TAB>label\[<TAB>label\.\.\.\]<TAB>path'"),
    ("x\t0\tcat.jpg\n", r"data\.lst:2: index 'x' is not an integer"),
    ("1\tcat\tcat.jpg\n", r"data\.lst:2: labels \['cat'\] are not all numbers"),
    ("0\t1\tcat.jpg\n", r"data\.lst:2: index 0 already used on line 1"),
    ("1\t0\t../secret.jpg\n", r"data\.lst:2: path '\.\./secret\.jpg' is outside the image root"),
    ("1\t0\t/etc/passwd\n", r"data\.lst:2: path '/etc/passwd' is outside the image root"),
])
def test_bad_list_lines_are_reported_with_file_and_line(tmp_path, line, message):
    (tmp_path / "data.lst").write_text("0\t0\tdog.jpg\n" + line)
    with pytest.raises(rp.ListFormatError, match=message):
        rp.ImageListDataset(str(tmp_path / "data.lst"))
    code, _, err = run_all([recpack_cmd("im2rec", tmp_path / "data", tmp_path)])[0]
    assert code == 1 and "data.lst:2:" in err
    assert sorted(os.listdir(tmp_path)) == ["data.lst"]


def test_outside_root_is_allowed_explicitly(tmp_path, photos):
    inner = tmp_path / "root"
    inner.mkdir()
    cv2.imwrite(str(tmp_path / "outside.jpg"), photos[0][1][:20, :20])
    write_lst(tmp_path / "data.lst", [(0, 1, "../outside.jpg")])
    assert recpack_main(["im2rec", "-q", str(tmp_path / "data"), str(inner)]) == 1
    assert recpack_main(["im2rec", "-q", "--allow-outside-root", str(tmp_path / "data"),
                         str(inner)]) == 0
    assert keys_of(str(tmp_path / "data.rec")) == [0]
