"""S3 under real network faults: a loopback proxy (tests/faultproxy.py) between recpack and a
real SeaweedFS server dies after request N, refuses request N, or the server itself is
stopped (SIGSTOP). For every request of a commit over an old pair, the command's error tells
the truth about what is at the URL, a reader sees a whole pair (or exactly what the error
said), and the same command run again leaves the whole new pair and no staging object."""
import json
import os
import re
import signal
import subprocess
import time

import numpy as np
import pytest

import mxnet_recpack as rp
from helpers import read, recpack_cmd, run_all, write_arrays, write_lst

pytestmark = pytest.mark.s3

NAMES = ("a.rec", "a.idx", "a.crc")


def images(seed, n):
    rng = np.random.RandomState(seed)
    return [rng.randint(0, 255, (8, 8, 3)).astype(np.uint8) for _ in range(n)]


def options(proxy):
    """Through the proxy; one attempt per request (no retry backoff: the test stays quick)."""
    return {"client_kwargs": {"endpoint_url": proxy.url},
            "config_kwargs": {"retries": {"total_max_attempts": 1, "mode": "standard"}}}


def state(fs, folder):
    """What a reader of the URL gets right now: each member's bytes (None when absent)."""
    fs.invalidate_cache()
    return {n: fs.cat_file("%s/%s" % (folder, n)) if fs.exists("%s/%s" % (folder, n)) else None
            for n in NAMES}


def objects(fs, folder):
    fs.invalidate_cache()
    return sorted(os.path.basename(p) for p in fs.ls(folder, refresh=True))


def claims(message):
    """What the error says each member is now: {name: {"new", "old"}}, or None if it says
    nothing about the URL."""
    if "the files at the URL are as they were" in message:
        return {n: {"old"} for n in NAMES}
    found = re.search(r"At the URL now: (.*?)\. ", message)
    if not found:
        return None
    out = {}
    for part in found.group(1).split("; "):
        name, word = part.split(": ", 1)
        out[name] = set(word.split(" (")[0].split(" or "))
    return out


@pytest.fixture
def pair_url(tmp_path, s3):
    """An s3:// URL holding an old pair, the old and the new members' bytes (an uninterrupted
    run's), and a function putting the old pair back."""
    fs, bucket = s3
    folder = "%s/pair" % bucket
    url = "s3://%s/a.rec" % folder
    (tmp_path / "old").mkdir()
    (tmp_path / "new").mkdir()
    old = write_arrays(tmp_path / "old" / "a.rec", images(1, 5), list(range(5)))
    new = write_arrays(tmp_path / "new" / "a.rec", images(2, 7), list(range(7)))
    old_bytes = {n: read(os.path.join(os.path.dirname(old), n)) for n in NAMES}
    new_bytes = {n: read(os.path.join(os.path.dirname(new), n)) for n in NAMES}

    def reset():
        for name in objects(fs, folder) if fs.exists(folder) else []:
            fs.rm_file("%s/%s" % (folder, name))
        for name in NAMES:
            fs.pipe_file("%s/%s" % (folder, name), old_bytes[name])
    reset()
    return fs, folder, url, old_bytes, new_bytes, reset


def write_new(url, proxy):
    write_arrays(url, images(2, 7), list(range(7)), storage_options=options(proxy))


def check_against(message, now, old, new):
    """The error's claims hold for what is at the URL now."""
    said = claims(message)
    if said is None:  # failed before anything was written: the pair is whole and old
        assert now == old, message
        return
    for name in NAMES:
        allowed = {old[name] if "old" in said[name] else None,
                   new[name] if "new" in said[name] else None} - {None}
        assert now[name] in allowed, (name, said[name], message)


def test_the_server_dying_after_any_request_of_a_commit(pair_url, s3_proxy):
    """Enumerate the requests of a commit over an old pair; for each N, the proxy dies before
    request N+1 is sent on (it is never done) or after the server answered it (it was done,
    the answer is lost)."""
    fs, folder, url, old, new, reset = pair_url
    write_new(url, s3_proxy)  # the uninterrupted run: its requests are the ones to cut
    requests = list(s3_proxy.exchanges)
    assert state(fs, folder) == new and objects(fs, folder) == sorted(NAMES)
    kinds = [(m, "copy" if c else t.split("?")[-1].split("=")[0]) for m, t, c in requests]
    assert len(requests) <= 16, requests  # every step one request: the windows stay short
    assert kinds.count(("PUT", "copy")) == 6, kinds  # three backups, three finals
    outcomes = set()
    for n, (method, _, _) in enumerate(requests):
        for mode in ("before", "after") if method != "GET" else ("before",):  # a read: once
            reset()
            getattr(s3_proxy, "die_" + mode)(n)
            try:
                write_new(url, s3_proxy)
            except rp.RecpackError as exc:
                message = str(exc)
                assert isinstance(exc, rp.StorageUnreachableError), message
                assert url in message and "could not be reached or stopped answering" in message
                check_against(message, state(fs, folder), old, new)
                outcomes.add("as they were" if "as they were" in message else
                             "told" if claims(message) else "before")
            else:  # the last requests (deleting the journal, the temporaries): done already
                assert state(fs, folder) == new, (n, mode)
                outcomes.add("done")
            if n % 2:  # a recpack reader settles the URL first: a whole pair, verified
                assert rp.verify(url).problems == []
                assert state(fs, folder) in (old, new), (n, mode)
            s3_proxy.revive()
            write_new(url, s3_proxy)  # the same command again
            assert state(fs, folder) == new, (n, mode)
            assert objects(fs, folder) == sorted(NAMES), (n, mode)
    assert outcomes == {"before", "as they were", "told", "done"}, outcomes


def test_a_refused_request_of_a_commit_is_undone_before_it_is_reported(pair_url, s3_proxy):
    """Each request answered with 403 in turn: the server answers, so whatever the commit did
    is undone before the error is raised, and nothing of it stays in the bucket."""
    fs, folder, url, old, new, reset = pair_url
    write_new(url, s3_proxy)
    requests = list(s3_proxy.exchanges)
    told = 0
    for n in range(len(requests)):
        reset()
        s3_proxy.refuse(n)
        try:
            write_new(url, s3_proxy)
        except rp.RecpackError as exc:
            message = str(exc)
            assert url in message and "PermissionError: Access Denied" in message, message
            assert state(fs, folder) == old, (n, message)
            assert objects(fs, folder) == sorted(NAMES), (n, message)
            told += "as they were" in message
        else:  # refused after the commit: the pair is new, the rest removed by the next run
            assert state(fs, folder) == new
        s3_proxy.revive()
        write_new(url, s3_proxy)
        assert state(fs, folder) == new and objects(fs, folder) == sorted(NAMES)
    assert told == sum(m == "PUT" for m, _, _ in requests)  # every upload, backup, copy


def test_an_undo_cut_off_and_a_finish_refused_are_undone_by_the_next_command(pair_url,
                                                                               s3_proxy):
    """Two faults in a row. (1) The copy of the .idx is refused, so the commit marks its
    journal rolling-back and starts putting the old .rec back, and the server dies then: the
    error says what is where, and the next command (verify) finishes the undoing. (2) A commit
    cut off after its journal, then the reader's finishing copy refused: it undoes instead."""
    fs, folder, url, old, new, reset = pair_url
    write_new(url, s3_proxy)
    requests = list(s3_proxy.exchanges)
    idx_copy = next(i for i, (_, t, c) in enumerate(requests) if c and t.endswith("/a.idx"))
    journal = next(i for i, (m, t, _) in enumerate(requests) if m == "PUT" and
                   t.endswith(".journal"))
    reset()
    s3_proxy.refuse(idx_copy, then_die_before=idx_copy + 2)  # the rolling-back mark gets in
    with pytest.raises(rp.StorageUnreachableError, match=r"was refused .*and putting the old "
                       r"ones back failed too .*At the URL now: a\.rec: new or old"):
        write_new(url, s3_proxy)
    assert state(fs, folder)["a.idx"] == old["a.idx"]
    s3_proxy.revive()
    fs.invalidate_cache()
    assert rp.verify(url, storage_options=options(s3_proxy)).problems == []
    assert state(fs, folder) == old and objects(fs, folder) == sorted(NAMES)

    reset()
    s3_proxy.die_before(journal + 1)  # the journal is written, no final replaced
    with pytest.raises(rp.StorageUnreachableError, match=r"At the URL now: a\.rec: new or old"):
        write_new(url, s3_proxy)
    s3_proxy.revive()
    s3_proxy.refuse(lambda method, target, source: bool(source) and target.endswith("/a.rec"))
    assert rp.verify(url, storage_options=options(s3_proxy)).problems == []
    assert state(fs, folder) == old and objects(fs, folder) == sorted(NAMES)
    s3_proxy.revive()
    write_new(url, s3_proxy)
    assert state(fs, folder) == new and objects(fs, folder) == sorted(NAMES)


# -- the CLI: a dead or stopped server ----------------------------------------------------------

def cli_env(endpoint, **extra):
    env = dict(os.environ, AWS_ENDPOINT_URL=endpoint)
    env.pop("FSSPEC_S3", None)
    env.update(extra)
    return env


@pytest.fixture
def small_list(tmp_path):
    """A list of 6 small JPEGs, for ``recpack im2rec --pass-through``."""
    from helpers import noise_jpegs
    root = tmp_path / "img"
    root.mkdir()
    rows = []
    for i, data in enumerate(noise_jpegs(6)):
        (root / ("%d.jpg" % i)).write_bytes(data)
        rows.append((i, i % 2, "%d.jpg" % i))
    return str(root), write_lst(tmp_path / "data.lst", rows)


def test_a_listing_cut_off_is_a_clear_error(tmp_path, s3, s3_proxy, small_list):
    """The server gone during the first request (a listing, or reading an image): each command
    says so, naming the URL; never "internal error"."""
    fs, bucket = s3
    root, lst = small_list
    for i in range(2):
        fs.put_file(lst, "%s/lists/data%d.lst" % (bucket, i))
    s3_proxy.die_before(0)  # the first request is cut off, the next ones refused
    commands = [["im2rec", "--pass-through", "s3://%s/lists/data" % bucket, root],
                ["merge", tmp_path / "m.rec", "s3://%s/parts/train.part*.rec" % bucket],
                ["verify", "s3://%s/parts/train.rec" % bucket],
                ["im2rec", "--pass-through", "--num-thread", "2", lst[:-4], "s3://%s/img" % bucket]]
    results = run_all([recpack_cmd(*args) for args in commands], timeout=120,
                      env=cli_env(s3_proxy.url))
    for args, (code, _, err) in zip(commands, results):
        assert code == 1, (args, err)
        assert "recpack: error: s3://%s/" % bucket in err, (args, err)
        assert "could not be reached or stopped answering" in err, (args, err)
        assert "internal error" not in err and "Traceback" not in err, (args, err)


def test_a_missing_s3_input_names_the_url(tmp_path, s3):
    fs, bucket = s3
    missing = "s3://%s/nothing/here.rec" % bucket
    commands = [["verify", missing], ["inspect", missing], ["index", missing],
                ["extract", missing, tmp_path / "x"], ["merge", tmp_path / "m.rec", missing]]
    results = run_all([recpack_cmd(*args) for args in commands], timeout=120,
                      env=cli_env(os.environ["AWS_ENDPOINT_URL"]))
    for args, (code, _, err) in zip(commands, results):
        assert code == 1, (args, err)
        assert "recpack: error: %s does not exist" % missing in err, (args, err)
    with pytest.raises(FileNotFoundError, match=r"list file s3://%s/nothing/data\.lst not "
                       r"found" % bucket):
        rp.im2rec("s3://%s/nothing/data.lst" % bucket, None, {"root": str(tmp_path)},
                  str(tmp_path / "out"))
    for make in (lambda url: write_arrays(url, images(1, 2)), rp.verify):
        with pytest.raises(rp.MissingObjectError, match=r"s3://%s-none/a\.rec: the bucket "
                           r"%s-none does not exist.*create it first" % (bucket, bucket)):
            make("s3://%s-none/a.rec" % bucket)


def stop_at(proxy, weed, match):
    """SIGSTOP the server when a request matching ``match(method, target, copy source)`` is
    about to reach it (the request is then sent to the stopped server)."""
    stopped = []

    def hook(method, target, fields):
        if not stopped and match(method, target, fields.get("x-amz-copy-source")):
            weed.send_signal(signal.SIGSTOP)
            stopped.append(time.monotonic())
    proxy.hook = hook
    return stopped


def test_a_signal_while_images_are_read_from_a_stopped_server_ends_the_run_at_once(
        s3, s3_weed, s3_proxy, small_list):
    """Worker threads stuck reading images from a stopped S3 root do not hold up the exit."""
    fs, bucket = s3
    root, lst = small_list
    for name in os.listdir(root):
        fs.put_file(os.path.join(root, name), "%s/img/%s" % (bucket, name))
    stopped = stop_at(s3_proxy, s3_weed[2], lambda m, t, c: m == "GET" and t.endswith(".jpg"))
    proc = subprocess.Popen(recpack_cmd("im2rec", "--pass-through", "--num-thread", "2",
                                        lst[:-4], "s3://%s/img" % bucket),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=cli_env(s3_proxy.url))
    try:
        took, err = signal_when_stopped(proc, stopped, signal.SIGTERM)
    finally:
        s3_weed[2].send_signal(signal.SIGCONT)
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130 and "interrupted" in err, err
    assert took < 3, took  # measured 0.4-0.5 s: the workers waiting on the server are left


def signal_when_stopped(proc, stopped, sig):
    """Once the server is stopped (and a second more), send ``sig``; (seconds until the
    command ended, its stderr)."""
    deadline = time.monotonic() + 60
    while not stopped and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert stopped, proc.communicate(timeout=30)
    time.sleep(1.0)
    sent = time.monotonic()
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    return time.monotonic() - sent, err


def test_a_stopped_server_ends_in_a_clear_error_after_the_timeouts(s3, s3_weed, s3_proxy,
                                                                   small_list):
    fs, bucket = s3
    root, lst = small_list
    fs.put_file(lst, "%s/stop/data.lst" % bucket)
    stopped = stop_at(s3_proxy, s3_weed[2], lambda m, t, c: m == "PUT" and ".upload-" in t)
    command = recpack_cmd("im2rec", "--pass-through", "--quiet", "s3://%s/stop/data" % bucket,
                          root)
    env = cli_env(s3_proxy.url, FSSPEC_S3=json.dumps(
        {"config_kwargs": {"connect_timeout": 1, "read_timeout": 1}}))
    start = time.monotonic()
    try:
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
        took = time.monotonic() - start
    finally:
        s3_weed[2].send_signal(signal.SIGCONT)
    assert stopped, "the upload never reached the server"
    assert done.returncode == 1, done.stderr
    assert "could not be reached or stopped answering" in done.stderr, done.stderr
    assert "the files at the URL are as they were" in done.stderr, done.stderr
    # the upload's deadline: 4 read timeouts (1 s here) and its bytes at 256 KiB/s; no hang
    assert "did not finish within 4 s" in done.stderr, done.stderr
    assert took < 60, took
    s3_proxy.hook = None
    done = subprocess.run(command, capture_output=True, text=True,
                          env=cli_env(os.environ["AWS_ENDPOINT_URL"]), timeout=120)
    assert done.returncode == 0, done.stderr
    assert objects(fs, "%s/stop" % bucket) == ["data.crc", "data.idx", "data.lst", "data.rec"]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_is_acted_on_at_once_while_the_server_is_stopped(s3, s3_weed, s3_proxy,
                                                                   small_list, sig):
    """The server stops at the copy of the .idx (the .rec already replaced, default timeouts):
    the signal ends the command within a second or two, with no request made after it; the
    next recpack command on the URL finds the journal and finishes the commit."""
    fs, bucket = s3
    root, lst = small_list
    fs.put_file(lst, "%s/sig/data.lst" % bucket)
    out = "s3://%s/sig/data.rec" % bucket
    command = recpack_cmd("im2rec", "--pass-through", "--quiet", "s3://%s/sig/data" % bucket,
                          root)
    stopped = stop_at(s3_proxy, s3_weed[2],
                      lambda m, t, c: m == "PUT" and c and t.endswith("/data.idx"))
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=cli_env(s3_proxy.url))
    try:
        took, err = signal_when_stopped(proc, stopped, sig)
    finally:
        s3_weed[2].send_signal(signal.SIGCONT)
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "interrupted" in err and "internal error" not in err, err
    assert "data.rec: new" in err, err  # what it left, said before it stopped
    assert took < 3, took  # measured 0.3-0.4 s: acted on at once, no request after it
    s3_proxy.hook = None
    fs.invalidate_cache()
    assert fs.exists("%s/sig/data.rec.journal" % bucket)
    env = cli_env(os.environ["AWS_ENDPOINT_URL"])
    done = subprocess.run(recpack_cmd("verify", out), capture_output=True, text=True, env=env,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert "finished an interrupted commit" in done.stderr, done.stderr
    fs.invalidate_cache()
    assert not fs.exists("%s/sig/data.rec.journal" % bucket)
    ref = rp.im2rec(lst, None, {"root": root, "pass_through": True},
                    os.path.join(os.path.dirname(lst), "ref"))
    assert fs.cat_file(out) == read(ref)
    assert fs.cat_file(out[:-4] + ".idx") == read(ref[:-4] + ".idx")
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert objects(fs, "%s/sig" % bucket) == ["data.crc", "data.idx", "data.lst", "data.rec"]
