"""Resume means resume: it continues an interrupted run byte for byte, recognises a run that
had finished ("already complete": nothing touched), and refuses, changing nothing, when there is
nothing of this run to continue; it never rebuilds a file it did not interrupt. Run
descriptions compare as data (what was saved as JSON equals what the live run computes)."""
import os

import numpy as np
import pytest

import mxnet_recpack as rp
from helpers import digest, idx_of, recpack_cmd, write_lst
from mxnet_recpack import RecordDataset


@pytest.fixture
def packed(tmp_path, image_folder):
    root, lst, rows = image_folder
    write_lst(tmp_path / "data.lst", rows[:8])
    rp.im2rec(str(tmp_path / "data.lst"), None, {"root": root, "resize": 32},
              str(tmp_path / "data"))
    return root, rows, str(tmp_path / "data.rec")


def test_resume_never_rebuilds_a_file_that_was_appended_to(packed, tmp_path):
    import subprocess
    root, rows, rec = packed
    write_lst(tmp_path / "more.lst", rows[8:11])
    rp.im2rec(str(tmp_path / "more.lst"), None, {"root": root, "resize": 32, "append": True},
              str(tmp_path / "data"))
    assert len(RecordDataset(rec)) == 11
    before = digest(rec, idx_of(rec))
    with pytest.raises(rp.OptionError, match=r"data\.rec: nothing to resume: no interrupted run "
                                             r"of this file was found, and the file there was "
                                             r"not made by this run"):
        rp.im2rec(str(tmp_path / "data.lst"), None, {"root": root, "resize": 32,
                                                     "resume": True}, str(tmp_path / "data"))
    result = subprocess.run(recpack_cmd("im2rec", "--resume", "--no-overwrite", "--resize", "32",
                                        tmp_path / "data", root), capture_output=True, text=True)
    assert result.returncode == 1 and "nothing to resume" in result.stderr
    assert digest(rec, idx_of(rec)) == before and len(RecordDataset(rec)) == 11


def test_resume_of_a_finished_run_is_already_complete_and_touches_nothing(packed, tmp_path):
    import subprocess
    root, rows, rec = packed
    stat = os.stat(rec)
    result = subprocess.run(recpack_cmd("im2rec", "--resume", "--resize", "32",
                                        tmp_path / "data", root), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "already complete (made by this same run); nothing to do" in result.stdout
    after = os.stat(rec)
    assert (after.st_ino, after.st_mtime_ns) == (stat.st_ino, stat.st_mtime_ns)
    # another run's options are not this run: refused, not rebuilt
    result = subprocess.run(recpack_cmd("im2rec", "--resume", "--resize", "40",
                                        tmp_path / "data", root), capture_output=True, text=True)
    assert result.returncode == 1 and "nothing to resume" in result.stderr
    assert os.stat(rec).st_mtime_ns == stat.st_mtime_ns


class Interrupt:
    """A progress callback that interrupts the run (Ctrl-C) after ``after`` items."""

    def __init__(self, after):
        self.after = after

    def __call__(self, done, total):
        if done >= self.after:
            raise KeyboardInterrupt


@pytest.mark.parametrize("operation", ["merge", "split", "shuffle", "filter", "relabel"])
def test_the_operations_resume_after_an_interruption(tmp_path, operation):
    rng = np.random.RandomState(0)
    src = str(tmp_path / "in.rec")
    with rp.RecordFileWriter(src, encoding=".png") as w:
        for key in range(40):
            w.write(rng.randint(0, 255, (20, 20, 3)).astype(np.uint8), key % 3, key=key)
    (tmp_path / "map.txt").write_text("0 10\n1 11\n2 12\n")

    def run(out, **options):
        args = {"merge": lambda: rp.merge(out, [src], **options),
                "split": lambda: rp.split(src, out[:-4], nsplit=2, **options),
                "shuffle": lambda: rp.shuffle(src, out, seed=4, **options),
                "filter": lambda: rp.filter_records(src, out, labels=[1, 2], **options),
                "relabel": lambda: rp.relabel(src, out, mapping=str(tmp_path / "map.txt"),
                                              **options)}
        return args[operation]()

    run(str(tmp_path / "ref.rec"), batch_size=4)
    with pytest.raises(KeyboardInterrupt):
        run(str(tmp_path / "out.rec"), batch_size=4,
            progress=Interrupt(12 if operation == "filter" else 30))
    assert any(n.endswith(".partial.json") for n in os.listdir(tmp_path))
    run(str(tmp_path / "out.rec"), batch_size=4, resume=True)
    outputs = ["out.part000.rec", "out.part001.rec"] if operation == "split" else ["out.rec"]
    for name in outputs:
        ref = str(tmp_path / name.replace("out", "ref"))
        got = str(tmp_path / name)
        assert digest(got, idx_of(got)) == digest(ref, idx_of(ref)), name
    assert not [n for n in os.listdir(tmp_path) if n.endswith((".partial", ".json", ".lock"))]


def _interrupted(rec, items, after=4, **options):
    """A write_dataset of ``items`` interrupted (Ctrl-C) after ``after`` of them."""
    with pytest.raises(KeyboardInterrupt):
        with rp.RecordFileWriter(rec, encoding=".png", **options) as w:
            w.write_dataset(items, batch_size=2, progress=Interrupt(after))


def _items(n=10):
    rng = np.random.RandomState(0)
    return [(rng.randint(0, 255, (12, 10, 3)).astype(np.uint8), float(i % 3)) for i in range(n)]


def test_a_resume_never_certifies_a_byte_changed_in_the_partial_file(tmp_path):
    items = _items()
    ref = str(tmp_path / "ref.rec")
    with rp.RecordFileWriter(ref, encoding=".png") as w:
        w.write_dataset(items, batch_size=2)
    rec = str(tmp_path / "r.rec")
    _interrupted(rec, items)
    blob = bytearray(open(rec + ".pack.partial", "rb").read())
    blob[14] ^= 0x40  # a byte of record 0's label, changed on the disk meanwhile
    open(rec + ".pack.partial", "wb").write(bytes(blob))
    with rp.RecordFileWriter(rec, encoding=".png", resume=True) as w:
        w.write_dataset(items, batch_size=2)
    assert digest(rec, idx_of(rec)) == digest(ref, idx_of(ref))  # record 0 made again
    assert rp.verify(rec).problems == []


def test_a_resumed_writer_commits_only_the_finished_run(tmp_path):
    items = _items()
    rec = str(tmp_path / "r.rec")
    _interrupted(rec, items)
    with pytest.raises(rp.OptionError, match=r"r\.rec: resume=True continues an interrupted "
                                             r"run: give write_dataset the same dataset"):
        with rp.RecordFileWriter(rec, encoding=".png", resume=True):
            pass
    with pytest.raises(rp.OptionError, match=r"resume=True continues an interrupted run"):
        with rp.RecordFileWriter(rec, encoding=".png", resume=True) as w:
            w.write(items[0][0], 9.0)
    assert not os.path.exists(rec)  # nothing committed, the partial run kept
    with rp.RecordFileWriter(rec, encoding=".png", resume=True) as w:
        summary = w.write_dataset(items, batch_size=2)
    assert summary.status == "written" and len(RecordDataset(rec)) == 10


def test_runs_of_single_records_are_not_resumed(tmp_path):
    rec = str(tmp_path / "s.rec")
    with pytest.raises(KeyboardInterrupt):
        with rp.RecordFileWriter(rec) as w:
            for image, label in _items(5):
                w.write(image, label)
            raise KeyboardInterrupt
    with pytest.raises(rp.OptionError, match="wrote several datasets \\(or single records\\), "
                                             "which cannot be resumed"):
        with rp.RecordFileWriter(rec, resume=True) as w:
            w.write_dataset(_items(5))
    with pytest.raises(rp.OptionError, match="resume=True continues an interrupted run"):
        with rp.RecordFileWriter(rec, resume=True) as w:
            for image, label in _items(5):
                w.write(image, label)
    assert not os.path.exists(rec)


def test_a_resume_of_a_file_it_did_not_interrupt_with_nothing_written_changes_nothing(packed):
    root, rows, rec = packed
    before = digest(rec, idx_of(rec))
    with rp.RecordFileWriter(rec, resume=True) as w:
        pass
    assert w.summary.status == "unchanged" and digest(rec, idx_of(rec)) == before


def test_a_run_resumes_after_its_folder_moved_and_its_root_spelled_otherwise(tmp_path,
                                                                          image_folder):
    import shutil
    import subprocess
    root, lst, rows = image_folder
    first = tmp_path / "first"
    first.mkdir()
    write_lst(first / "data.lst", rows)
    ref = tmp_path / "ref"
    ref.mkdir()
    write_lst(ref / "data.lst", rows)
    rp.im2rec(str(ref / "data.lst"), None, {"root": root, "resize": 32}, str(ref / "data"))
    with pytest.raises(KeyboardInterrupt):
        rp.im2rec(str(first / "data.lst"), None, {"root": root, "resize": 32, "batch_size": 4,
                                                  "progress": Interrupt(8)},
                  str(first / "data"))
    moved = tmp_path / "moved"
    shutil.move(str(first), str(moved))
    spelled = os.path.relpath(root, str(moved))  # the same root, given relative to the folder
    result = subprocess.run(recpack_cmd("im2rec", "--resume", "--resize", "32",
                                        "--batch-size", "4", "data", spelled), cwd=str(moved),
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert digest(moved / "data.rec", moved / "data.idx") == \
        digest(ref / "data.rec", ref / "data.idx")


@pytest.mark.parametrize("change", ["no index", "keys swapped", "index cut"])
def test_already_complete_is_said_only_of_the_pair_as_it_was_written(packed, tmp_path, change):
    import subprocess
    root, rows, rec = packed
    lines = open(idx_of(rec)).read().splitlines()
    if change == "no index":
        os.remove(idx_of(rec))
    elif change == "keys swapped":
        (k1, o1), (k2, o2) = (line.split("\t") for line in lines[:2])
        open(idx_of(rec), "w").write("\n".join(["%s\t%s" % (k2, o1), "%s\t%s" % (k1, o2)] +
                                               lines[2:]) + "\n")
    else:
        open(idx_of(rec), "w").write("\n".join(lines[:5]) + "\n")
    result = subprocess.run(recpack_cmd("im2rec", "--resume", "--resize", "32",
                                        tmp_path / "data", root), capture_output=True, text=True)
    assert result.returncode == 1 and "nothing to resume" in result.stderr, result.stderr


def test_a_finished_append_to_a_file_without_a_sidecar_is_recognised(packed, tmp_path):
    import subprocess
    root, rows, rec = packed
    os.remove(rec[:-4] + ".crc")  # as im2rec.py leaves a pair: no sidecar
    write_lst(tmp_path / "data.lst", rows[8:12])
    append = recpack_cmd("im2rec", "--append", "--resize", "32", tmp_path / "data", root)
    assert subprocess.run(append, capture_output=True).returncode == 0
    sums = rp.format.checksums.read_checksums(rec[:-4] + ".crc")
    assert sums.covers == "some" and len(sums) == 4  # it vouches for what it wrote
    result = subprocess.run(append + ["--resume"], capture_output=True, text=True)
    assert result.returncode == 0 and "already complete" in result.stdout, result.stderr
    assert rp.verify(rec).problems == [] and len(RecordDataset(rec)) == 12


@pytest.mark.parametrize("state", ['{"version": 2, "append": true, "target": null}',
                                   '{"version": 2, "run": "hello"}', '[1, 2]', '{"vers'])
def test_a_damaged_run_state_is_refused_by_name(tmp_path, state):
    rec = str(tmp_path / "d.rec")
    _interrupted(rec, _items())
    partial = open(idx_of(rec) + ".pack.partial", "rb").read()
    open(rec + ".pack.partial.json", "w").write(state)
    with pytest.raises(rp.RecpackError, match=r"d\.rec: cannot resume, the run description "
                                              r".*d\.rec\.pack\.partial\.json is unreadable"):
        rp.RecordFileWriter(rec, encoding=".png", resume=True)
    assert open(idx_of(rec) + ".pack.partial", "rb").read() == partial  # nothing rewritten
