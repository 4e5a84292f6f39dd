"""Every command crash-tested at every I/O step (SQLite's approach): each file-system call a run
makes (open for writing, write, writev, flush, fsync, truncate, link, rename, replace, remove,
kernel copies) is enumerated, then for each one the command is run again and, at that call,
killed (SIGKILL), failed with ENOSPC (and the disk stays full), or failed with EIO. Right after
each, before any other command runs, MXNet's own readers look at the target: the sequential
``MXRecordIO`` reads the whole old or the whole new ``.rec``, and the indexed
``MXIndexedRecordIO`` reads the whole old or the whole new pair, or finds no ``.idx`` at all
inside a commit's pair switch (never a new ``.rec`` beside an old ``.idx``, or the reverse). An
error names the step and the cause, never a bare errno or "internal error". Then ``--resume``
(where the command has it) finishes byte-identical to an uninterrupted run, or says plainly
that there is nothing to resume and changes nothing; the next successful run leaves no stray
file. ``RECPACK_CRASH_STRIDE=N`` tries every N-th step only (``make test-fast``)."""
import os
import shutil
import subprocess

import numpy as np
import pytest

from crash import Driver, copy_folder, killed, mxnet_views, strays
from helpers import read, write_lst
from mxnet_recpack import RecordFileWriter, samples
from mxnet_recpack.cli import main
from mxnet_recpack.format.checksums import read_checksums

pytestmark = pytest.mark.mxnet  # the pairs are read with MXNet's own readers

STRIDE = int(os.environ.get("RECPACK_CRASH_STRIDE", "1"))
KINDS = ("kill", "enospc", "eio")
CAUSES = {"enospc": "no space left on device", "eio": "input/output error"}
#: Ends of the files a command's run is checked by: byte for byte.
COMPARED = (".rec", ".idx", ".failures.jsonl")


@pytest.fixture(scope="module")
def driver():
    d = Driver()
    yield d
    d.close()


@pytest.fixture
def folder(tmp_path):
    """Where a command's runs go: a tmpfs where this machine lets us mount one (fsync is free
    there, so two thousand runs take minutes), else ``tmp_path``."""
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    ok = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256m", "tmpfs", str(mount)],
                        capture_output=True).returncode == 0
    yield mount if ok else tmp_path
    if ok:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    root = tmp_path_factory.mktemp("crash_images")
    files = samples.make_image_folder(str(root), classes=2, per_class=3, long_side=(40, 56),
                                      seed=11)
    return str(root), files


def _rows(files, keys):
    return [(k, k % 2, f) for k, f in zip(keys, files)]


def _pair(path, keys, seed=0):
    rng = np.random.RandomState(seed)
    with RecordFileWriter(str(path), encoding=".png") as w:
        for k in keys:
            w.write(rng.randint(0, 255, (12, 10, 3)).astype(np.uint8), float(k % 2), key=k)


def _pack(folder, images, old=True):
    root, files = images
    write_lst(folder / "data.lst", _rows(files[:2], [3, 7]) + [(9, 1, "missing.jpg")] +
              _rows(files[2:4], [12, 20]))
    if old:
        _pair(folder / "data.rec", [1, 2], seed=5)


PACK = ["im2rec", "-q", "--resize", "24", "--batch-size", "2", "data"]
#: Files stored as they are: each batch read into one buffer, the failure report as above.
PASS_THROUGH = ["im2rec", "-q", "--pass-through", "--num-thread", "2", "--batch-size", "2",
                "data"]


def _append(folder, images):
    root, files = images
    _pair(folder / "data.rec", [1, 2], seed=5)
    write_lst(folder / "data.lst", _rows(files[2:4], [12, 20]) + [(22, 0, "missing.jpg")] +
              _rows(files[4:5], [21]))


def _input(folder, images):
    _pair(folder / "in.rec", [3, 7, 9, 12, 20], seed=1)


def _merge(folder, images):
    _pair(folder / "a.rec", [3, 7], seed=1)
    _pair(folder / "b.rec", [9, 12], seed=2)
    _pair(folder / "m.rec", [1], seed=3)


def _split(folder, images):
    _input(folder, images)
    _pair(folder / "s_train.rec", [1], seed=3)
    _pair(folder / "s_val.rec", [2], seed=4)


def _edit(folder, images):
    _input(folder, images)
    _pair(folder / "out.rec", [1], seed=3)
    (folder / "map.txt").write_text("0 5\n1 6\n")


def _salvage(folder, images):
    _input(folder, images)
    data = read(folder / "in.rec")
    (folder / "in.rec").write_bytes(data[:-10])  # a torn last record
    _pair(folder / "in.salvaged.rec", [1], seed=3)


def _shards(folder, images):
    """A .rec to convert, and the target folder as an earlier conversion (of other records,
    in more shards) left it: the new run must replace it whole."""
    _input(folder, images)
    _pair(folder / "old.rec", [1, 2, 4, 5, 6, 8], seed=3)  # 6 shards, the new run 3
    assert main(["convert", "-q", str(folder / "old.rec"), str(folder / "w"), "--to",
                 "webdataset", "--shard-size", "1"]) == 0
    os.remove(folder / "old.rec")
    os.remove(folder / "old.idx")
    os.remove(folder / "old.crc")


def _from_shards(folder, images):
    _input(folder, images)
    assert main(["convert", "-q", str(folder / "in.rec"), str(folder / "t"), "--to",
                 "tfrecord", "--shard-size", "2"]) == 0
    for ext in (".rec", ".idx", ".crc"):
        os.remove(folder / ("in" + ext))
    _pair(folder / "out.rec", [1], seed=3)


#: name: (setup, argv (the image root is appended to im2rec's), targets, has --resume); a
#: target ending in "/" is a folder of shards

COMMANDS = {
    "pack": (_pack, PACK, ["data.rec"], True),
    "pack-new": (lambda f, i: _pack(f, i, old=False), PACK, ["data.rec"], True),
    "append": (_append, PACK + ["--append"], ["data.rec"], True),
    "resume": (_pack, PACK + ["--resume"], ["data.rec"], True),
    "pack-pass-through": (_pack, PASS_THROUGH, ["data.rec"], True),
    "resume-pass-through": (_pack, PASS_THROUGH + ["--resume"], ["data.rec"], True),
    "resume-append": (_append, PACK + ["--append", "--resume"], ["data.rec"], True),
    "merge": (_merge, ["merge", "-q", "m.rec", "a.rec", "b.rec"], ["m.rec"], True),
    "split": (_split, ["split", "-q", "in.rec", "s", "--train-ratio", "0.5", "--no-shuffle"],
              ["s_train.rec", "s_val.rec"], True),
    "shuffle": (_edit, ["shuffle", "-q", "in.rec", "out.rec", "--seed", "3"], ["out.rec"],
                True),
    "filter": (_edit, ["filter", "-q", "in.rec", "out.rec", "--labels", "1"], ["out.rec"], True),
    "relabel": (_edit, ["relabel", "-q", "in.rec", "out.rec", "--mapping", "map.txt"],
                ["out.rec"], True),
    "rewrite": (_edit, ["rewrite", "-q", "in.rec", "out.rec", "--resize", "8"], ["out.rec"],
                True),
    "index": (_input, ["index", "-q", "in.rec", "--keys", "position"], ["in.rec"], False),
    "salvage": (_salvage, ["index", "-q", "--salvage", "in.rec"], ["in.salvaged.rec"], False),
    "convert-to-shards": (_shards, ["convert", "-q", "in.rec", "w", "--to", "webdataset",
                                    "--shard-size", "2", "--batch-size", "2"], ["w/"], True),
    "convert-from-shards": (_from_shards, ["convert", "-q", "t", "out.rec", "--batch-size",
                                           "2"], ["out.rec"], True),
}


def _argv(name, images):
    argv = list(COMMANDS[name][1])
    if argv[0] == "im2rec":
        argv.insert(argv.index("data") + 1, images[0])
    return argv


def _state(folder, targets):
    """What a user relies on in ``folder``: each target's MXNet views and compared files."""
    out = {}
    for t in targets:
        if t.endswith("/"):  # every file of the folder, byte for byte
            names = sorted(os.listdir(folder / t)) if (folder / t).is_dir() else []
            out[t] = {n: read(folder / t / n) for n in names}
            continue
        base = t[:-4]
        out[t] = mxnet_views(folder / t)
        for ext in COMPARED[1:]:
            path = folder / (base + ext)
            out[base + ext] = read(path) if path.exists() else None
        sums = read_checksums(folder / (base + ".crc")) if (folder / (base + ".crc")).exists() \
            else None
        out[base + ".crc"] = None if sums is None else (sums.crcs.tobytes(), sums.length,
                                                        sums.keys.tobytes() if sums.keys is not
                                                        None else None)
    return out


def _template(name, images, tmp_path):
    template = tmp_path / "template"
    template.mkdir()
    COMMANDS[name][0](template, images)
    return template


#: Commands that continue a run: it is killed first, before its last batch of records (after
#: a failure was reported and records written), then the resume itself is crashed.
PRIMED = {"resume": "pack", "resume-append": "append",
          "resume-pass-through": "pack-pass-through"}


def _start(name, driver, images, template, folder):
    """A copy of ``template`` at ``folder``, as the command finds it."""
    copy_folder(template, folder)
    if name in PRIMED:
        argv = _argv(PRIMED[name], images)
        steps = driver.run(argv, folder, at=10 ** 6).steps
        last = max(i for i, s in enumerate(steps) if s.startswith("writev"))
        for n in os.listdir(folder):
            if n not in os.listdir(template):
                os.remove(folder / n)
        copy_folder(template, folder, exist_ok=True)
        assert killed(driver.run(argv, folder, at=last, kind="kill"))
        assert os.path.exists(folder / "data.rec.pack.partial.json")
        assert (folder / "data.failures.jsonl.pack.partial").read_bytes().count(b"\n") == 1
    return folder


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_a_crash_at_every_io_step_leaves_old_or_new_and_resume_finishes(name, driver, images,
                                                                       folder):
    tmp_path = folder
    _, _, targets, resumable = COMMANDS[name]
    argv = _argv(name, images)
    template = _template(name, images, tmp_path)
    old = _state(template, targets)
    ref = _start(name, driver, images, template, tmp_path / "ref")
    whole = driver.run(argv, ref)
    assert whole.code == 0, whole.err
    new = _state(ref, targets)
    assert new != old
    expected_names = sorted(os.listdir(ref))
    steps = whole.steps
    assert len(steps) > 10, steps
    tried = 0
    for at in range(0, len(steps), STRIDE):
        for kind in KINDS:
            case = _start(name, driver, images, template, tmp_path / ("%s-%d" % (kind, at)))
            run = driver.run(argv, case, at=at, kind=kind)
            where = "%s at step %d (%s): " % (kind, at, run.fired)
            assert run.fired == steps[at], where + "the runs differ: %s" % run.steps
            _check_right_after(run, kind, case, targets, old, new, where)
            _check_next_run(run, argv, resumable, case, targets, old, new, driver, where)
            assert sorted(os.listdir(case)) == expected_names, where + str(strays(case))
            shutil.rmtree(case)
            tried += 1
    print("%s: %d steps, %d faults tried" % (name, len(steps), tried))


def _check_right_after(run, kind, case, targets, old, new, where):
    if not killed(run):
        assert run.code in (0, 1), where + run.err
        assert "Traceback" not in run.err and "internal error" not in run.err, where + run.err
    if run.code == 1:
        message = run.err.strip().splitlines()[-1]
        assert message.startswith("recpack: error: "), where + run.err
        assert CAUSES[kind] in message and "[Errno" not in message, where + message
        assert any(t.rstrip("/")[:-4 if t.endswith(".rec") else None] in message
                   for t in targets), where + message  # names the file
    for t in targets:
        if t.endswith("/"):
            # the whole old or the whole new set of shards; or, inside the commit's renames,
            # a journal that the next command on the target settles
            assert _state(case, [t])[t] in (old[t], new[t]) or os.path.exists(
                case / (t.rstrip("/") + ".journal")), where + t
            continue
        seq, indexed = mxnet_views(case / t)
        assert seq in (old[t][0], new[t][0]), where + "%s: sequential reader sees %s" % (
            t, str(seq)[:300])
        if indexed == "absent" and old[t][1] != "absent":
            # inside a replaced pair's switch: no .idx at all, and the journal says so
            assert os.path.exists(case / (t + ".journal")), where + t
        else:
            assert indexed in (old[t][1], new[t][1]), where + "%s: indexed reader sees %s" % (
                t, str(indexed)[:300])


def _check_next_run(run, argv, resumable, case, targets, old, new, driver, where):
    if not resumable:
        again = driver.run(argv, case)
        assert again.code == 0, where + again.err
        assert _state(case, targets) == new, where
        return
    interrupted = any(n.endswith(".partial.json") for n in os.listdir(case))
    before = _state(case, targets)
    resumed = driver.run(argv + ["--resume"], case)
    if resumed.code == 1 and "nothing to resume" in resumed.err:
        assert not interrupted, where + "an interrupted run was not resumed: " + resumed.err
        assert _state(case, targets) == before, where + "a refused resume changed the files"
        again = driver.run([a for a in argv if a != "--resume"], case)
        assert again.code == 0, where + again.err
    else:
        assert resumed.code == 0, where + resumed.err
    assert _state(case, targets) == new, where + "the result differs from an uninterrupted run"
