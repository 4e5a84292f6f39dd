"""Worker processes under every start method (fork, spawn, forkserver: spawn is the default on
macOS and Windows), what cannot be pickled is refused up front, and a worker that dies fails
the run within seconds, naming the items it held."""
import os
import subprocess
import sys
import textwrap
import time

import pytest

from helpers import read

SCRIPT = textwrap.dedent("""
    import multiprocessing, sys
    import numpy as np
    import mxnet_recpack as rp

    def mirror(image):
        return np.ascontiguousarray(image[:, ::-1])

    class Items:
        '''Items made by Python code for each position: run in worker processes.'''
        def __len__(self):
            return 24
        def __getitem__(self, i):
            img = np.zeros((16, 24, 3), np.uint8)
            img[:, :, i % 3] = 10 * i
            return img, i % 5

    if __name__ == "__main__":
        method, out, lst, root, what = sys.argv[1:6]
        multiprocessing.set_start_method(method)
        if what == "items":
            with rp.RecordFileWriter(out) as w:
                w.write_dataset(Items(), num_workers=2, batch_size=5, thread_pool=False)
        elif what == "transform":
            rp.im2rec(lst, mirror, {"root": root, "resize": 32, "num_thread": 2,
                                    "batch_size": 3}, out[:-4])
        elif what == "lambda":
            rp.im2rec(lst, lambda image: image, {"root": root, "num_thread": 2}, out[:-4])
        elif what == "gluon":
            from mxnet.gluon.data.vision import transforms
            # bicubic has no exact OpenCV twin: the Gluon path (NDArrays, processes) runs
            ds = rp.ImageListDataset(lst, root=root).transform_first(
                transforms.Resize(32, keep_ratio=True, interpolation=2))
            ds.to_recordio(out, num_workers=2, batch_size=3)
""")


@pytest.fixture
def script(tmp_path):
    path = tmp_path / "job.py"
    path.write_text(SCRIPT)
    return str(path)


def run(script, *args, timeout=300):
    return subprocess.run([sys.executable, script] + [str(a) for a in args],
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("what", ["items", "transform"])
def test_same_bytes_under_every_start_method(tmp_path, script, image_folder, what):
    root, lst, _ = image_folder
    outputs = []
    for method in ("fork", "spawn", "forkserver"):
        out = str(tmp_path / ("%s-%s.rec" % (what, method)))
        result = run(script, method, out, lst, root, what)
        assert result.returncode == 0, result.stderr
        outputs.append((read(out), read(out[:-4] + ".idx")))
    assert outputs[0] == outputs[1] == outputs[2]
    assert len(outputs[0][1].splitlines()) > 0


@pytest.mark.mxnet
def test_gluon_datasets_under_spawn(tmp_path, script, image_folder):
    root, lst, rows = image_folder
    spawn, fork = str(tmp_path / "spawn.rec"), str(tmp_path / "fork.rec")
    for method, out in (("spawn", spawn), ("fork", fork)):
        result = run(script, method, out, lst, root, "gluon")
        assert result.returncode == 0, result.stderr
    assert read(spawn) == read(fork)


def test_what_cannot_be_pickled_is_refused_up_front_under_spawn(tmp_path, script,
                                                                image_folder):
    root, lst, _ = image_folder
    out = str(tmp_path / "l.rec")
    result = run(script, "spawn", out, lst, root, "lambda")
    assert result.returncode != 0
    assert "receive the dataset by pickle, and the transform <function <lambda>" in \
        result.stderr
    assert "cannot be pickled" in result.stderr and "module level" in result.stderr
    assert not os.path.exists(out)
    fork = run(script, "fork", out, lst, root, "lambda")  # under fork it works as before
    assert fork.returncode == 0, fork.stderr


KILLER = textwrap.dedent("""
    import os, signal, sys
    import numpy as np
    import mxnet_recpack as rp

    class Items:
        def __len__(self):
            return 40
        def __getitem__(self, i):
            if i == 17:
                os.kill(os.getpid(), signal.SIGKILL)  # what the OOM killer does
            return np.zeros((8, 8, 3), np.uint8), 0

    if __name__ == "__main__":
        import multiprocessing
        multiprocessing.set_start_method(sys.argv[2])
        with rp.RecordFileWriter(sys.argv[1]) as w:
            w.write_dataset(Items(), num_workers=2, batch_size=4, thread_pool=False)
""")


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_a_killed_worker_fails_the_run_within_seconds_naming_its_items(tmp_path, method):
    path = tmp_path / "kill.py"
    path.write_text(KILLER)
    out = str(tmp_path / "k.rec")
    t0 = time.monotonic()
    result = subprocess.run([sys.executable, str(path), out, method], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode != 0
    assert time.monotonic() - t0 < 30
    assert "was killed by signal 9 (SIGKILL: the OOM killer, or kill -9) while it held items " \
           "16-19 (first: key 16)" in result.stderr
    assert not os.path.exists(out)


STUCK = textwrap.dedent("""
    import sys, threading
    import numpy as np
    import mxnet_recpack as rp

    class Items:
        def __len__(self):
            return 40
        def __getitem__(self, i):
            if i == 9:
                threading.Event().wait()  # stuck for ever, but alive (a hung read, a deadlock)
            return np.zeros((8, 8, 3), np.uint8), 0

    if __name__ == "__main__":
        try:
            with rp.RecordFileWriter(sys.argv[1]) as w:
                w.write_dataset(Items(), num_workers=2, batch_size=1, timeout=3,
                                thread_pool=sys.argv[2] == "threads")
        except rp.WorkerError as exc:
            print(exc, file=sys.stderr)
            sys.exit(3)
""")


@pytest.mark.parametrize("pool", ["processes", "threads"])
def test_a_stuck_worker_fails_the_run_at_its_timeout_naming_its_items(tmp_path, pool):
    """A worker that is alive but never returns an item: the run stops once the batch it holds
    has been awaited for ``timeout`` seconds, though the other worker's batches keep arriving;
    the stuck worker process is ended, nothing is written."""
    path = tmp_path / "stuck.py"
    path.write_text(STUCK)
    out = str(tmp_path / "s.rec")
    t0 = time.monotonic()
    result = subprocess.run([sys.executable, str(path), out, pool], capture_output=True,
                            text=True, timeout=90)
    assert result.returncode == 3, result.stderr
    assert time.monotonic() - t0 < 60  # the 3 s timeout, start-up and clean-up: no hang
    who = ("worker process 1 (pid " if pool == "processes" else "worker thread 1 has not")
    assert "no result for items 9 (first: key 9) within 3 s (timeout): " + who in \
        result.stderr, result.stderr
    assert not os.path.exists(out)
    if pool == "processes":
        pid = int(result.stderr.split("(pid ")[1].split(")")[0])
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
