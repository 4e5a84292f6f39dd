"""Appends cost what they add (the existing file is never copied, and never touched until the
commit: every reader sees exactly the old records meanwhile), and resume and append continue
only what they started."""
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
from conftest import MXNET
from helpers import digest, idx_of, read, recpack_cmd, write_arrays, write_lst
from mxnet_recpack import RecordDataset, RecordFileWriter


def noise(n, seed, size=24):
    rng = np.random.RandomState(seed)
    return [rng.randint(0, 255, (size, size, 3)).astype(np.uint8) for _ in range(n)]


def test_an_append_adds_after_the_end_and_extends_the_checksums(tmp_path, real_reader):
    first, more = noise(6, 1), noise(4, 2)
    rec = write_arrays(tmp_path / "a.rec", first, list(range(6)), encoding=".png")
    inode, before = os.stat(rec).st_ino, read(rec)
    with RecordFileWriter(rec, encoding=".png", append=True) as w:
        w.write_dataset([(img, 6 + i) for i, img in enumerate(more)])
    assert os.stat(rec).st_ino == inode  # the same file, added to: never copied
    after = read(rec)
    assert after[:len(before)] == before
    whole = write_arrays(tmp_path / "whole.rec", first + more, list(range(10)), encoding=".png")
    assert after == read(whole) and read(idx_of(rec)) == read(idx_of(whole))
    from mxnet_recpack.format.checksums import read_checksums
    appended, made = read_checksums(tmp_path / "a.crc"), read_checksums(tmp_path / "whole.crc")
    assert appended.same_entries(made)  # extended, not re-read: the same keys, offsets, CRCs
    assert appended.run is not None and appended.run != made.run  # the run that wrote it last
    assert [r[0] for r in real_reader(rec)] == [float(i) for i in range(10)]
    assert rp.verify(rec).checksums == "match"


APPEND_AND_WAIT = textwrap.dedent("""
    import os, sys, time
    import numpy as np
    import mxnet_recpack as rp
    rec, flag = sys.argv[1], sys.argv[2]

    class Slow:
        def __len__(self):
            return 200
        def __getitem__(self, i):
            if i == 100:
                open(flag, "w").close()  # half the records are written: let the test look
                time.sleep(600)
            return np.full((24, 24, 3), i, np.uint8), 1000 + i

    with rp.RecordFileWriter(rec, encoding=".png", append=True) as w:
        w.write_dataset(Slow(), batch_size=10)
""")


def test_until_the_commit_every_reader_sees_the_old_records(tmp_path, real_reader):
    """A pair under an interrupted append: MXNet's readers (ImageRecordIter included, which
    reads past the last indexed record to the end of the file) or DALI's see the old records,
    and a kill -9 leaves the original bytes; the next append starts clean."""
    rec = write_arrays(tmp_path / "a.rec", noise(5, 3), list(range(5)), encoding=".png")
    before = digest(rec, idx_of(rec), str(tmp_path / "a.crc"))
    old = [r[0] for r in real_reader(rec)]
    script = tmp_path / "append.py"
    script.write_text(APPEND_AND_WAIT)
    flag = tmp_path / "halfway"
    proc = subprocess.Popen([sys.executable, str(script), rec, str(flag)])
    try:
        deadline = time.monotonic() + 60
        while not flag.exists():
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        assert [r[0] for r in real_reader(rec)] == old
        if MXNET:
            import mxnet as mx
            it = mx.io.ImageRecordIter(path_imgrec=rec, path_imgidx=idx_of(rec),
                                       data_shape=(3, 24, 24), batch_size=1)
            assert sorted(int(b.label[0].asnumpy()[0]) for b in it) == list(range(5))
    finally:  # killed mid-append, and never left behind by a failed check
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert digest(rec, idx_of(rec), str(tmp_path / "a.crc")) == before
    with RecordFileWriter(rec, encoding=".png", append=True) as w:
        w.write(np.zeros((8, 8, 3), np.uint8), 9)
    assert [r[0] for r in real_reader(rec)] == old + [9.0]


KILL_IN_TAIL_COPY = textwrap.dedent("""
    import os, signal, sys
    import numpy as np
    import mxnet_recpack as rp
    from mxnet_recpack.storage import local
    real = local.copy_range

    def copy_range(src, dst, size, dst_offset=0):
        real(src, dst, size // 2, dst_offset=dst_offset)  # half the new records are in place
        os.kill(os.getpid(), signal.SIGKILL)
    import mxnet_recpack.pipeline.journal as journal
    journal.copy_range = copy_range
    with rp.RecordFileWriter(sys.argv[1], encoding=".png", append=True) as w:
        w.write_dataset([(np.full((24, 24, 3), i, np.uint8), 100 + i) for i in range(20)])
""")


def test_a_kill_while_the_commit_adds_the_records_is_finished_next_time(tmp_path):
    rec = write_arrays(tmp_path / "a.rec", noise(5, 4), list(range(5)), encoding=".png")
    script = tmp_path / "kill.py"
    script.write_text(KILL_IN_TAIL_COPY)
    result = subprocess.run([sys.executable, str(script), rec], capture_output=True, timeout=120)
    assert result.returncode == -signal.SIGKILL
    assert os.path.exists(rec + ".journal")
    code = subprocess.run(recpack_cmd("verify", rec), capture_output=True, text=True)
    assert code.returncode == 0, code.stdout + code.stderr
    assert "finished an interrupted commit" in code.stderr
    labels = [label for _, label in RecordDataset(rec)]
    assert labels == [0.0, 1.0, 2.0, 3.0, 4.0] + [100.0 + i for i in range(20)]


@pytest.mark.slow
def test_resume_refuses_a_list_whose_labels_changed(tmp_path, image_folder):
    root, lst, rows = image_folder
    write_lst(tmp_path / "d.lst", rows)
    params = {"root": root, "encoding": ".png", "quality": 9, "resize": 200}
    with pytest.raises(KeyboardInterrupt):
        def stop(done, total):
            if done >= 6:
                raise KeyboardInterrupt
        rp.im2rec(str(tmp_path / "d.lst"), None, dict(params, batch_size=3, progress=stop),
                  str(tmp_path / "d"))
    assert os.path.exists(tmp_path / "d.rec.pack.partial")
    write_lst(tmp_path / "d.lst", [(k, 1 - lab, rel) for k, lab, rel in rows])  # new labels
    with pytest.raises(rp.OptionError, match=r"cannot resume: the interrupted run differs in "
                                             r"fingerprint"):
        rp.im2rec(str(tmp_path / "d.lst"), None, dict(params, batch_size=3, resume=True),
                  str(tmp_path / "d"))


def test_resume_refuses_another_dataset_of_the_same_length(tmp_path):
    rec = str(tmp_path / "r.rec")
    w = RecordFileWriter(rec, encoding=".png")
    with pytest.raises(KeyboardInterrupt):
        with w:
            def stop(done, total):
                if done >= 4:
                    raise KeyboardInterrupt
            w.write_dataset([(img, 0) for img in noise(10, 5)], batch_size=2, progress=stop)
    with pytest.raises(rp.OptionError, match=r"item 3 \(key 3\) does not give the bytes the "
                                             r"interrupted run stored"):
        with RecordFileWriter(rec, encoding=".png", resume=True) as w:
            w.write_dataset([(img, 0) for img in noise(10, 6)], batch_size=2)
    with RecordFileWriter(rec, encoding=".png", resume=True) as w:  # the same one resumes
        w.write_dataset([(img, 0) for img in noise(10, 5)], batch_size=2)
    whole = write_arrays(tmp_path / "w.rec", noise(10, 5), [0] * 10, encoding=".png")
    assert read(rec) == read(whole)


def test_resume_append_refuses_a_target_replaced_meanwhile(tmp_path):
    rec = write_arrays(tmp_path / "a.rec", noise(3, 7), [0, 1, 2])
    with pytest.raises(KeyboardInterrupt):
        with RecordFileWriter(rec, append=True) as w:
            def stop(done, total):
                raise KeyboardInterrupt
            w.write_dataset([(img, 5) for img in noise(6, 8)], batch_size=2, progress=stop)
    newer = write_arrays(tmp_path / "newer.rec", noise(4, 9), [7, 7, 7, 7])
    for ext in (".rec", ".idx", ".crc"):
        shutil.copy(newer[:-4] + ext, rec[:-4] + ext)  # another tool put a newer file there
    before = digest(rec, idx_of(rec))
    with pytest.raises(rp.RecpackError, match="cannot resume the interrupted append: the file "
                                              "changed since it began"):
        RecordFileWriter(rec, append=True, resume=True)
    assert digest(rec, idx_of(rec)) == before  # the newer file is not overwritten
