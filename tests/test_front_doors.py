"""The front doors: every file a command reads is checked for being a regular file before it is
read (a FIFO would block for ever, /dev/zero never ends, a directory is no file), refused by
name, without a hang; options are checked before any input is opened; the interrupt message
advises only what the command can do."""
import os
import signal
import subprocess
import time

import numpy as np
import pytest

import mxnet_recpack as rp
from helpers import idx_of, recpack_cmd, write_arrays
from mxnet_recpack import RecordDataset

KINDS = {"fifo": "a FIFO (named pipe)", "dev_zero": "a character device",
         "directory": "a directory"}


def make(path, kind):
    """``path`` as a FIFO, as /dev/zero (a symbolic link to it) or as a directory."""
    path = str(path)
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "dev_zero":
        os.symlink("/dev/zero", path)
    else:
        os.mkdir(path)
    return path


def refused(result, path, kind, what):
    """The command failed at once, with one line naming the path, what it is, and as what."""
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    assert "%s is %s, not a regular file: refused as %s" % (path, KINDS[kind], what) in \
        result.stderr, result.stderr


def cli(*args, cwd=None):
    return subprocess.run(recpack_cmd(*args), capture_output=True, text=True, timeout=60,
                          cwd=cwd)


@pytest.fixture
def good(tmp_path):
    return write_arrays(tmp_path / "good.rec", [np.full((8, 8, 3), 9 * i, np.uint8)
                                                for i in range(4)], [0, 1, 0, 1])


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("command", [
    ("verify",), ("verify", "--quick"), ("index",), ("index", "--salvage"), ("inspect",),
    ("extract", "OUT"), ("shuffle", "OUT.rec"), ("merge",), ("filter", "OUT.rec")])
def test_a_record_file_that_is_not_a_file_is_refused_by_every_command(tmp_path, kind,
                                                                      command):
    rec = make(tmp_path / "x.rec", kind)
    name, rest = command[0], [str(tmp_path / a) if a.startswith("OUT") else a
                              for a in command[1:]]
    args = [name, str(tmp_path / "m.rec"), rec] if name == "merge" else [name, rec] + rest
    refused(cli(*args), rec, kind, "an input record file" if name in (
        "shuffle", "merge", "filter") else "the record file")
    assert sorted(os.listdir(tmp_path)) == ["x.rec"]  # no .idx of /dev/zero, nothing else


@pytest.mark.parametrize("kind", ["fifo", "dev_zero"])
def test_an_index_or_sidecar_that_is_not_a_file_is_refused(tmp_path, good, kind):
    os.remove(idx_of(good))
    idx = make(idx_of(good), kind)
    for args in (("verify", good), ("inspect", good), ("extract", good, tmp_path / "out"),
                 ("shuffle", good, tmp_path / "s.rec")):
        refused(cli(*args), idx, kind, "the index")
    with pytest.raises(rp.NotAFileError, match="refused as the index"):
        RecordDataset(good)
    os.remove(idx)
    rp.rebuild_index(good)
    os.remove(good[:-4] + ".crc")
    crc = make(good[:-4] + ".crc", kind)
    refused(cli("verify", good), crc, kind, "the checksum sidecar")


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_lists_keys_files_and_mappings_that_are_not_files_are_refused(tmp_path, good, kind):
    thing = make(tmp_path / "t.txt", kind)
    refused(cli("filter", good, tmp_path / "f.rec", "--keep-keys", thing), thing, kind,
            "a keys file")
    refused(cli("relabel", good, tmp_path / "r.rec", "--mapping", thing), thing, kind,
            "a label mapping file")
    refused(cli("relabel", good, tmp_path / "r.rec", "--list", thing), thing, kind,
            "an im2rec list file")
    lst = make(tmp_path / "d.lst", kind)
    result = cli("im2rec", tmp_path / "d", tmp_path)
    if kind == "directory":  # not a list (as im2rec.py), so there is none to pack
        assert result.returncode == 1 and "no list file d*.lst in" in result.stderr
    else:
        refused(result, lst, kind, "an im2rec list file")
    assert not any(n.startswith(("f.", "r.", "d.rec")) for n in os.listdir(tmp_path))


# ---- interrupted: what is left, and what to do ------------------------------------------------

def test_an_interrupted_verify_says_nothing_changed_and_no_resume(tmp_path):
    """SIGTERM while verify decodes: exit 130, and the message does not advise --resume, which
    verify does not have. (im2rec's advice to resume: test_nothing_lost.)"""
    rng = np.random.RandomState(0)
    rec = write_arrays(tmp_path / "big.rec", [rng.randint(0, 255, (160, 160, 3)).astype(np.uint8)
                                              for _ in range(800)], [0] * 800)
    proc = subprocess.Popen(recpack_cmd("verify", rec), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    target, deadline = os.path.realpath(rec), time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline:  # until it reads the file
        try:
            if any(os.readlink("/proc/%d/fd/%s" % (proc.pid, fd)) == target
                   for fd in os.listdir("/proc/%d/fd" % proc.pid)):
                break
        except OSError:
            pass
        time.sleep(0.002)
    proc.send_signal(signal.SIGSTOP)  # held in verify: the signal arrives there
    assert proc.poll() is None, "verify finished before it could be interrupted"
    proc.send_signal(signal.SIGTERM)
    proc.send_signal(signal.SIGCONT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert err == "recpack: interrupted; nothing was changed\n"


# ---- options before inputs --------------------------------------------------------------------

@pytest.mark.parametrize("call, message", [
    (lambda i, t: rp.merge(t / "m.rec", [i, i], batch_size=0), r"batch_size = 0 is not valid"),
    (lambda i, t: rp.merge(t / "m.rec", [i], identities="same"), r"identities = 'same'"),
    (lambda i, t: rp.shuffle(i, t / "s.rec", seed=-1), r"seed = -1 is not valid"),
    (lambda i, t: rp.shuffle(i, t / "s.rec", num_worker=2), r"unknown option key\(s\) "
                                                            r"'num_worker'"),
    (lambda i, t: rp.split(i, t / "p", train_ratio=0.8, test_ratio=0.3),
     r"train_ratio \+ test_ratio must be at most 1"),
    (lambda i, t: rp.split(i, t / "p"), r"split needs exactly one of"),
    (lambda i, t: rp.split(i, t / "p", nsplit=0), r"nsplit = 0 is not valid"),
    (lambda i, t: rp.split(i, t / "p", keys_files=[t / "k.txt", t / "k.txt"]),
     r"two keys files are named 'k'"),
    (lambda i, t: rp.filter_records(i, t / "f.rec", keep_keys=[-1]), r"keep_keys = \[-1\] is "
                                                                      r"not valid"),
    (lambda i, t: rp.filter_records(i, t / "f.rec", labels=["cat"]), r"labels = \['cat'\]"),
    (lambda i, t: rp.filter_records(i, t / "f.rec", drop_keys=t / "bad_keys.txt"),
     r"bad_keys\.txt:1: 'x' is not a record key"),
    (lambda i, t: rp.relabel(i, t / "r.rec", mapping=t / "bad_map.txt"),
     r"bad_map\.txt:1: expected 'OLD_LABEL NEW_LABEL"),
    (lambda i, t: rp.relabel(i, t / "r.rec", list_file=t / "bad.lst"), r"bad\.lst:1: "),
    (lambda i, t: rp.rewrite(i, t / "w.rec", quality=101), r"quality = 101 is not valid"),
    (lambda i, t: rp.rewrite(i, t / "w.rec", nsplit=2, part=2), r"part = 2 is not valid"),
    (lambda i, t: rp.rewrite(i, t / "w.rec", timeout=0), r"timeout = 0 is not valid"),
])
def test_the_operations_check_their_options_before_they_open_an_input(tmp_path, call,
                                                                       message):
    """An input that cannot be opened (a missing file here; a 100 GB one in life) is never
    reached when an option is wrong: the option is named at once."""
    (tmp_path / "k.txt").write_text("1\n")
    (tmp_path / "bad_keys.txt").write_text("x\n")
    (tmp_path / "bad_map.txt").write_text("1\n")
    (tmp_path / "bad.lst").write_text("1\tx.jpg\n")
    with pytest.raises((rp.OptionError, rp.ListFormatError), match=message):
        call(str(tmp_path / "missing.rec"), tmp_path)


# ---- InsightFace layout of every input --------------------------------------------------------

def face_file(folder, name, people):
    """An InsightFace-layout file packed by im2rec from a folder per identity."""
    import cv2
    root = folder / (name + "_people")
    for person, n in people.items():
        (root / person).mkdir(parents=True)
        for i in range(n):
            cv2.imwrite(str(root / person / ("%d.png" % i)), np.full((12, 12, 3), 20 * i + n,
                                                                     np.uint8))
    prefix = str(folder / name)
    rp.make_list(str(root), prefix, recursive=True)
    return rp.im2rec(prefix + ".lst", None, {"root": str(root), "insightface": True})


@pytest.mark.parametrize("op", ["shuffle", "split", "filter", "relabel", "rewrite"])
def test_several_inputs_one_of_them_a_face_file_are_refused_by_name(tmp_path, good, op):
    """Each input's layout is checked, not only a sole input's: two face files taken as one
    would come out with identity ranges that name the wrong images."""
    faces = [face_file(tmp_path, "a", {"ann": 2, "ben": 3}), face_file(tmp_path, "b",
                                                                       {"cid": 2})]
    (tmp_path / "keys.txt").write_text("1\n")
    (tmp_path / "map.txt").write_text("0 5\n1 6\n")
    run = {"shuffle": lambda ins: rp.shuffle(ins, tmp_path / "out.rec"),
           "split": lambda ins: rp.split(ins, tmp_path / "out", nsplit=2),
           "filter": lambda ins: rp.filter_records(ins, tmp_path / "out.rec",
                                                   drop_keys=tmp_path / "keys.txt"),
           "relabel": lambda ins: rp.relabel(ins, tmp_path / "out.rec",
                                             mapping=tmp_path / "map.txt", keep_missing=True),
           "rewrite": lambda ins: rp.rewrite(ins, tmp_path / "out.rec", resize=8)}[op]
    for inputs, named in ((faces, "%s, %s are" % tuple(faces)), ([good, faces[1]],
                                                               "%s is" % faces[1])):
        with pytest.raises(rp.OptionError, match=r"%s in InsightFace's layout .*: %s takes one "
                           r"such file at a time. Merge them first" % (named, op)):
            run(inputs)
    assert not [n for n in os.listdir(tmp_path) if n.startswith("out")]
    run([good])  # plain files go through


# ---- a URL read through a local copy: results and errors name the URL ------------------------

@pytest.mark.s3
def test_what_is_read_through_a_local_copy_names_the_url_not_the_copy(tmp_path, good, s3):
    """inspect, verify, extract and index read an s3:// file through a temporary local copy,
    gone when they print: every path they print, return or raise names the URL instead."""
    import json
    fs, bucket = s3
    lines = open(idx_of(good)).read().splitlines(keepends=True)
    open(idx_of(good), "w").writelines(lines[:-1])  # the last record is not listed
    url = "s3://%s/d/good.rec" % bucket
    for path in (good, idx_of(good)):
        fs.put(path, "%s/d/%s" % (bucket, os.path.basename(path)))
    truncated = tmp_path / "cut.rec"
    truncated.write_bytes(open(good, "rb").read()[:-7])
    fs.put(str(truncated), "%s/d/cut.rec" % bucket)
    unlisted = "record is not listed in the index %s" % url[:-4] + ".idx"
    runs = {"inspect": cli("inspect", url), "json": cli("inspect", "--json", url),
            "verify": cli("verify", url), "index": cli("index", url[:-8] + "cut.rec"),
            "extract": cli("extract", url[:-8] + "cut.rec", tmp_path / "out")}
    for name, result in runs.items():
        assert "recpack-read-" not in result.stdout + result.stderr, (name, result)
    assert runs["inspect"].stdout.splitlines()[0].endswith("index %s" % url[:-4] + ".idx")
    assert json.loads(runs["json"].stdout)["index_path"] == url[:-4] + ".idx"
    assert runs["verify"].returncode == 1 and unlisted in runs["verify"].stdout
    cut = url[:-8] + "cut.rec, byte offset "
    assert runs["index"].returncode == 1 and cut in runs["index"].stderr, runs["index"].stderr
    assert runs["extract"].returncode == 1 and cut in runs["extract"].stderr
    result = rp.verify(url)
    assert [p["message"] for p in result.problems] == [unlisted]
    assert json.dumps(result.as_dict()).count(url[:-4] + ".idx") == 1
    info = rp.inspection.inspect_file(url)
    assert info["path"] == url and info["index_path"] == url[:-4] + ".idx"
    with pytest.raises(rp.RecordFormatError, match=r"^%s" % cut) as caught:
        rp.inspection.extract(url[:-8] + "cut.rec", tmp_path / "out2")
    assert caught.value.path == url[:-8] + "cut.rec"


def test_a_url_is_not_copied_here_before_the_options_are_checked(tmp_path):
    """verify and extract read a URL through a local copy: a wrong option, or a folder that
    extract would refuse, is named before the copy (here, from an endpoint where nothing
    listens, so a copy would fail differently)."""
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    options = {"key": "k", "secret": "s", "client_kwargs": {
        "endpoint_url": "http://127.0.0.1:%d" % port}}
    url = "s3://bucket/big.rec"
    with pytest.raises(rp.OptionError, match=r"num_thread = 0 is not valid"):
        rp.verify(url, num_threads=0, storage_options=options)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "kept.txt").write_text("x")
    with pytest.raises(rp.OutputExistsError, match=r"out is not empty"):
        rp.inspection.extract(url, tmp_path / "out", storage_options=options)


@pytest.mark.parametrize("op", ["merge", "shuffle", "filter", "relabel", "rewrite"])
def test_an_output_that_is_an_input_is_refused_before_the_input_is_read(tmp_path, op):
    """The input here has no .idx and is damaged from its first byte: reading it would fail
    on that; the output that names it is refused first."""
    junk = tmp_path / "junk.rec"
    junk.write_bytes(b"\0" * 4096)
    (tmp_path / "map.txt").write_text("0 1\n")
    run = {"merge": lambda: rp.merge(junk, [junk]), "shuffle": lambda: rp.shuffle(junk, junk),
           "filter": lambda: rp.filter_records(junk, junk, labels=[0]),
           "relabel": lambda: rp.relabel(junk, junk, mapping=tmp_path / "map.txt"),
           "rewrite": lambda: rp.rewrite(junk, junk, resize=8)}[op]
    with pytest.raises(rp.OptionError, match=r"junk\.rec is also an input"):
        run()
    assert junk.read_bytes() == b"\0" * 4096
