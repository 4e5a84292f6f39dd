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
