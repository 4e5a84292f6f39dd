"""Nothing lost, for real: one owner per output, and the pair commits as a pair whatever step
fails (a refused rename, a full disk, a kill between the renames, an upload that fails), the
next command finishing or undoing what was interrupted. Faults are real where the machine
allows (a full tmpfs, ``chattr +i``), patched system calls where it does not."""
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import mxnet_recpack as rp
from helpers import digest, idx_of, recpack_cmd, write_arrays, write_lst
from mxnet_recpack import RecordDataset, RecordFileWriter


def old_pair(path, n=4, seed=0):
    rng = np.random.RandomState(seed)
    return write_arrays(path, [rng.randint(0, 255, (16, 16, 3)).astype(np.uint8)
                               for _ in range(n)], list(range(n)), encoding=".png")


def leftovers(folder):
    return sorted(p for p in os.listdir(folder) if p.endswith((".partial", ".journal", ".old",
                                                               ".lock", ".json")))


@pytest.fixture(scope="module")
def slow_list(tmp_path_factory):
    """A list whose PNG-9 packing takes a few seconds: long enough to act while it runs."""
    root = tmp_path_factory.mktemp("slow")
    files = rp.samples.make_image_folder(str(root), classes=2, per_class=40,
                                         long_side=(400, 560), seed=5)
    return str(root), [(k, k % 2, f) for k, f in enumerate(files)]


SLOW = ["--encoding", ".png", "--quality", "9", "--resize", "300", "--inter-method", "4"]


def start_slow(folder, root, rows):
    write_lst(folder / "data.lst", rows)
    proc = subprocess.Popen(recpack_cmd("im2rec", "-q", *SLOW, folder / "data", root),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    partial = folder / "data.rec.pack.partial"
    deadline = time.monotonic() + 60
    while not (partial.exists() and partial.stat().st_size > 100_000):
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
        time.sleep(0.02)
    return proc


@pytest.mark.slow
def test_index_and_a_second_writer_are_refused_while_a_writer_runs(tmp_path, slow_list,
                                                                   real_reader):
    root, rows = slow_list
    proc = start_slow(tmp_path, root, rows)
    for cmd in (recpack_cmd("index", tmp_path / "data.rec"),
                recpack_cmd("im2rec", "-q", tmp_path / "data", root)):
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        assert result.returncode == 1
        assert "data.rec is being written right now (pack, pid %d on " % proc.pid in \
            result.stderr, result.stderr
        assert "im2rec" in result.stderr and "released when that process ends" in result.stderr
    assert proc.wait(120) == 0, proc.stderr.read()
    assert [r[0] for r in real_reader(str(tmp_path / "data.rec"))] == [r[1] for r in rows]
    assert rp.verify(str(tmp_path / "data.rec")).problems == []
    assert leftovers(tmp_path) == []


def test_a_refused_rename_leaves_the_whole_old_pair(tmp_path, image_folder, monkeypatch,
                                                    immutable):
    root, lst, rows = image_folder
    rec = old_pair(tmp_path / "out.rec")
    before = digest(rec, idx_of(rec), str(tmp_path / "out.crc"))
    if not immutable(idx_of(rec)):
        real = os.replace

        def refuse(src, dst):
            if str(dst).endswith(".idx"):
                raise PermissionError(1, "Operation not permitted", dst)
            return real(src, dst)
        monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(rp.CommitError, match=r"out\.rec: the commit could not complete: .*"
                                             r"out\.idx.*the previous files are back in place; "
                                             r"the finished run is kept: .*--resume"):
        rp.im2rec(lst, None, {"root": root}, str(tmp_path / "out"))
    subprocess.run(["chattr", "-i", idx_of(rec)], capture_output=True)
    monkeypatch.undo()
    assert digest(rec, idx_of(rec), str(tmp_path / "out.crc")) == before
    assert len(RecordDataset(rec)) == 4  # the old pair, whole
    assert os.path.exists(rec + ".pack.partial")  # the new run kept: resume commits it
    rp.im2rec(lst, None, {"root": root, "resume": True}, str(tmp_path / "out"))
    assert list(RecordDataset(rec).keys) == [k for k, _, _ in rows]
    assert leftovers(tmp_path) == []


KILL_AT_RENAME = textwrap.dedent("""
    import os, signal, sys
    real, count = os.replace, [0]

    def replace(src, dst):
        real(src, dst)
        if str(dst).endswith(".rec"):  # the new .rec is in place, the .idx not yet
            if os.environ.get("INTERRUPT") == "ctrl-c":  # the run's own clean-up then runs
                raise KeyboardInterrupt
            os.kill(os.getpid(), signal.SIGKILL)
    os.replace = replace
    from mxnet_recpack.cli import main
    sys.exit(main(sys.argv[1:]))
""")


@pytest.mark.parametrize("next_command,interrupt", [
    ("verify", "kill"), ("im2rec", "kill"), ("index", "kill"), ("verify", "ctrl-c")])
def test_a_kill_between_the_renames_is_finished_by_the_next_command(tmp_path, image_folder,
                                                                    next_command, interrupt):
    root, lst, rows = image_folder
    old_pair(tmp_path / "data.rec")
    write_lst(tmp_path / "data.lst", rows)
    script = tmp_path / "kill.py"
    script.write_text(KILL_AT_RENAME)
    result = subprocess.run([sys.executable, str(script), "im2rec", "-q", str(tmp_path / "data"),
                             root], capture_output=True, text=True, timeout=120,
                            env=dict(os.environ, INTERRUPT=interrupt))
    assert result.returncode == (-signal.SIGKILL if interrupt == "kill" else 130), result.stderr
    assert os.path.exists(tmp_path / "data.rec.journal")  # new .rec beside the old .idx
    cmd = {"verify": ("verify", tmp_path / "data.rec"),
           "im2rec": ("im2rec", "-q", "--no-overwrite", tmp_path / "data", root),
           "index": ("index", tmp_path / "data.rec")}[next_command]
    settled = subprocess.run(recpack_cmd(*cmd), capture_output=True, text=True, timeout=120)
    assert "finished an interrupted commit: the new files are in place" in settled.stderr
    if next_command != "im2rec":  # (im2rec --no-overwrite then refuses the pair that is there)
        assert settled.returncode == 0, settled.stderr
    assert list(RecordDataset(str(tmp_path / "data.rec")).keys) == [k for k, _, _ in rows]
    assert rp.verify(str(tmp_path / "data.rec")).problems == []
    assert not os.path.exists(tmp_path / "data.rec.journal")
    write_lst(tmp_path / "clean.lst", rows)  # the whole new pair: what an uninterrupted run makes
    rp.im2rec(str(tmp_path / "clean.lst"), None, {"root": root}, str(tmp_path / "clean"))
    assert digest(tmp_path / "data.rec", tmp_path / "data.idx") == \
        digest(tmp_path / "clean.rec", tmp_path / "clean.idx")


def test_a_full_disk_during_an_append_leaves_the_file_as_it_was_and_resume_finishes(
        tmp_path, full_disk, monkeypatch):
    folder = full_disk or tmp_path
    rec = old_pair(folder / "a.rec", n=3)
    before = digest(rec, idx_of(rec), str(folder / "a.crc"))
    rng = np.random.RandomState(1)
    noise = [(rng.randint(0, 255, (256, 256, 3)).astype(np.uint8), i) for i in range(40)]
    if full_disk is None:
        real, calls = os.writev, [0]

        def writev(fd, buffers):
            calls[0] += 1
            if calls[0] > 3:
                raise OSError(28, "No space left on device")
            return real(fd, buffers)
        monkeypatch.setattr(os, "writev", writev)
    with pytest.raises(rp.OutputError, match=r"a\.rec: could not write the records: no space "
                                             r"left on device \(while writing the records to "
                                             r".*a\.rec\.pack\.partial\); the previous files are "
                                             r"intact; the partial run is kept: free space, then "
                                             r"run the same command with --resume"):
        with RecordFileWriter(rec, encoding=".png", quality=0, append=True) as w:
            w.write_dataset(noise, batch_size=2)
    monkeypatch.undo()
    assert digest(rec, idx_of(rec), str(folder / "a.crc")) == before
    assert len(RecordDataset(rec)) == 3
    assert os.path.exists(rec + ".pack.partial")  # what was written is kept for the resume
    if full_disk is not None:  # free space: the file system grows
        subprocess.run(["mount", "-o", "remount,size=64m", str(full_disk)], check=True)
    with RecordFileWriter(rec, encoding=".png", quality=0, append=True, resume=True) as w:
        w.write_dataset(noise, batch_size=2)
    ref = old_pair(tmp_path / "ref.rec", n=3)
    with RecordFileWriter(ref, encoding=".png", quality=0, append=True) as w:
        w.write_dataset(noise, batch_size=2)
    assert digest(rec, idx_of(rec)) == digest(ref, idx_of(ref))
    assert leftovers(folder) == []


@pytest.mark.s3
def test_an_upload_that_fails_between_the_pair_leaves_the_remote_pair_whole(tmp_path, s3,
                                                                             s3_proxy):
    """The server refuses the copy of the .idx (a real 403 answer, from a proxy in front of
    it) after the .rec was replaced: the old .rec is put back before the error is raised."""
    fs, bucket = s3
    url = "s3://%s/pair/a.rec" % bucket
    old = old_pair(tmp_path / "old.rec")
    for ext in (".rec", ".idx"):
        fs.put_file(old[:-4] + ext, url[:-4] + ext)
    before = (fs.cat_file(url), fs.cat_file(url[:-4] + ".idx"))
    through = {"client_kwargs": {"endpoint_url": s3_proxy.url}}
    s3_proxy.refuse(lambda method, target, source: bool(source) and target.endswith("/a.idx"))
    with pytest.raises(rp.CommitError, match=r"putting the new files in place was refused "
                       r"\(PermissionError: Access Denied\); the files at the URL are as they "
                       r"were"):
        write_arrays(url, [np.zeros((8, 8, 3), np.uint8)] * 6, list(range(6)),
                     storage_options=through)
    copies = [t for _, t, source in s3_proxy.exchanges if source]
    assert copies.index("/%s/pair/a.idx" % bucket) == copies.index("/%s/pair/a.rec" % bucket) + 1
    fs.invalidate_cache()
    assert (fs.cat_file(url), fs.cat_file(url[:-4] + ".idx")) == before
    assert sorted(os.path.basename(p) for p in fs.ls("%s/pair" % bucket)) == ["a.idx", "a.rec"]


def test_an_unclosed_writer_warns_and_keeps_its_partial_output(tmp_path):
    rec = str(tmp_path / "w.rec")
    w = RecordFileWriter(rec)
    w.write_dataset([(np.zeros((8, 8, 3), np.uint8), i) for i in range(5)])
    with pytest.warns(ResourceWarning, match="dropped without close\\(\\).*resume=True"):
        del w
        import gc
        gc.collect()
    assert not os.path.exists(rec) and os.path.exists(rec + ".pack.partial")
    with RecordFileWriter(rec, resume=True) as w:
        w.write_dataset([(np.zeros((8, 8, 3), np.uint8), i) for i in range(5)])
    assert len(RecordDataset(rec)) == 5


KILL_AT_JOURNAL = textwrap.dedent("""
    import os, signal, sys
    import numpy as np
    real = os.replace

    def replace(src, dst):
        real(src, dst)
        if str(dst).endswith(".journal"):  # the append's journal is in place, nothing copied
            os.kill(os.getpid(), signal.SIGKILL)
    os.replace = replace
    from mxnet_recpack import RecordFileWriter
    with RecordFileWriter(sys.argv[1], append=True, encoding=".png") as w:
        w.write_dataset([(np.full((16, 16, 3), 9 * i, np.uint8), i) for i in range(3)])
""")


def test_the_journal_of_an_append_is_not_applied_to_a_replaced_file(tmp_path):
    """An append killed at its commit leaves its journal; another tool then replaces the pair.
    The next command never truncates or extends the new file by that journal: it says so, and
    the pair it finds stays exactly as the other tool wrote it."""
    rec = old_pair(tmp_path / "a.rec")
    script = tmp_path / "kill.py"
    script.write_text(KILL_AT_JOURNAL)
    killed = subprocess.run([sys.executable, str(script), rec], capture_output=True, text=True,
                            timeout=120)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert os.path.exists(rec + ".journal")
    other = old_pair(tmp_path / "other.rec", n=6, seed=3)  # what the other tool writes
    os.replace(other, rec)
    os.replace(idx_of(other), idx_of(rec))
    replaced = digest(rec, idx_of(rec))
    settled = subprocess.run(recpack_cmd("verify", rec), capture_output=True, text=True,
                             timeout=120)
    assert "found the journal of an interrupted append, but %s was replaced since: left as it " \
           "is" % rec in settled.stderr, settled.stderr
    assert settled.returncode == 0, settled.stdout
    assert digest(rec, idx_of(rec)) == replaced and not os.path.exists(rec + ".journal")
    assert list(RecordDataset(rec).keys) == list(range(6))


def _killed_at(driver_steps_match, argv, folder):
    """Run ``recpack ARGV`` in ``folder`` killed right before the first step that matches."""
    from crash import Driver
    driver = Driver()
    try:
        probe = folder.parent / (folder.name + "-probe")
        shutil.copytree(folder, probe)
        steps = driver.run(argv, probe, at=10 ** 6).steps
        at = next(i for i, s in enumerate(steps) if driver_steps_match(s))
        run = driver.run(argv, folder, at=at, kind="kill")
        assert run.signal == signal.SIGKILL
    finally:
        driver.close()


def test_a_folder_moved_while_its_commit_was_interrupted_settles_its_own_files(
        tmp_path, image_folder):
    root, lst, rows = image_folder
    work = tmp_path / "w"
    work.mkdir()
    old_pair(work / "data.rec")
    write_lst(work / "data.lst", rows)
    argv = ["im2rec", "-q", "data", root]
    # inside the pair's switch: the old .idx removed, the new .rec not yet in place
    _killed_at(lambda s: s.startswith("replace data.rec.pack.partial -> data.rec"), argv, work)
    assert not os.path.exists(work / "data.idx")
    shutil.copytree(work, tmp_path / "copy")
    shutil.move(str(work), str(tmp_path / "moved"))
    for folder in (tmp_path / "moved", tmp_path / "copy"):
        settled = subprocess.run(recpack_cmd("verify", folder / "data.rec"),
                                 capture_output=True, text=True)
        assert settled.returncode == 0, settled.stdout + settled.stderr
        assert "finished an interrupted commit: the new files are in place" in settled.stderr
        assert list(RecordDataset(str(folder / "data.rec")).keys) == [k for k, _, _ in rows]
        assert not [n for n in os.listdir(folder) if ".journal" in n]


def test_an_append_whose_staged_records_were_removed_is_undone(tmp_path, image_folder):
    root, lst, rows = image_folder
    work = tmp_path / "w"
    work.mkdir()
    write_lst(work / "data.lst", rows[:6])
    rp.im2rec(str(work / "data.lst"), None, {"root": root}, str(work / "data"))
    before = digest(work / "data.rec", work / "data.idx")
    write_lst(work / "data.lst", rows[6:])
    _killed_at(lambda s: s.startswith("open data.rec") and s.endswith("data.rec"),
               ["im2rec", "-q", "--append", "data", root], work)
    assert os.path.exists(work / "data.rec.journal")
    os.remove(work / "data.rec.pack.partial")  # a clean-up by hand after the crash
    settled = subprocess.run(recpack_cmd("verify", work / "data.rec"), capture_output=True,
                             text=True)
    assert "rolled back an interrupted commit that could not be finished" in settled.stderr
    assert settled.returncode == 0, settled.stdout
    assert digest(work / "data.rec", work / "data.idx") == before


@pytest.mark.parametrize("damage", ["member without a final", "append without rec"])
def test_a_damaged_journal_is_refused_by_name(tmp_path, damage):
    import json
    rec = old_pair(tmp_path / "a.rec")
    entry = {"version": 2, "kind": "replace", "owned": [], "members": [{"new": "a.idx.x"}]}
    if damage == "append without rec":
        entry = {"version": 2, "kind": "append", "owned": [], "members": [], "length": 4}
    open(rec + ".journal", "w").write(json.dumps(entry))
    result = subprocess.run(recpack_cmd("verify", rec), capture_output=True, text=True)
    assert result.returncode == 1 and "internal error" not in result.stderr
    assert "a.rec.journal is not a commit journal recpack can read" in result.stderr
