#!/usr/bin/env python
"""Benchmark ``recpack im2rec`` (and the Gluon path) against MXNet's ``tools/im2rec.py``.

Every tool run is a subprocess; runs of the tools being compared alternate, ``--repeat`` times,
and the median is kept. Throughput is *marginal*: ``(N_large - N_small) / (t_large - t_small)``,
which cancels start-up cost. ``--quick`` is a smoke test (under 2 minutes); the default run
takes 5-10 minutes on 2 cores. See ``benchmarks/README.md`` for workloads and targets.
"""

import argparse
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import threading
import time

import psutil

HERE = os.path.dirname(os.path.abspath(__file__))
DATA_DIR = os.path.join(HERE, "_data")
POLL_S = 0.05
#: The environment for tool runs, taken before cv2 is imported (its loader edits LD_LIBRARY_PATH).
#: Bytecode caching stays on, as users have it: a run that recompiles every module each time
#: would time the compiler (warm_up compiles them once).
TOOL_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
WORKLOAD_NAMES = ("resize", "gluon", "camera", "passthrough", "startup", "codec", "memory")

#: Generated datasets: classes, long side range (px), JPEG quality, seed.
DATASETS = {
    "imagenet": dict(classes=10, long_side=(300, 640), quality=90, seed=0),
    "camera": dict(classes=4, long_side=(1600, 3000), quality=90, seed=1),
    "photos": dict(classes=10, long_side=(600, 900), quality=92, seed=2),  # ~95 KB files
}
#: Files of the ``photos`` set (pass-through lists cycle through them).
PHOTO_FILES = 2000

#: Image counts per mode: (small, large) lists, the start-up list, memory-test list lengths.
#: The pass-through and memory lists cycle through the imagenet images (see `write_list`).
SIZES = {
    "default": dict(imagenet=(500, 5000), camera=(40, 400), passthrough=(1000, 20000),
                    startup=100, memory=(10000, 100000)),
    "quick": dict(imagenet=(200, 1500), camera=(10, 60), passthrough=(500, 8000),
                  startup=100, memory=(2000, 20000)),
}

#: Side-by-side workloads, baseline tool first: images (and SIZES key, if not the same),
#: whether the lists cycle, and the codec limit they are held to.
PAIRS = {
    "resize": dict(title="1. im2rec --resize 256 --quality 95 (imagenet)", dataset="imagenet",
                   tools=("im2rec.py", "recpack"), limit="imagenet",
                   flags=["--resize", "256", "--quality", "95", "--num-thread", "2"]),
    "gluon": dict(title="2. Gluon: to_recordio vs hand-written DataLoader (imagenet)",
                  dataset="imagenet", tools=("naive-gluon", "gluon"), limit="imagenet", flags=[]),
    "camera": dict(title="3a. camera photos, --resize 256 (recpack: --reduced-decode on)",
                   dataset="camera", tools=("im2rec.py", "recpack"), limit="camera",
                   flags=["--resize", "256", "--num-thread", "2"],
                   extra={"recpack": ["--reduced-decode", "on"]}),
    "camera-area": dict(title="3b. camera photos, --resize 256 (recpack: --inter-method 9)",
                        dataset="camera", only="camera", tools=("im2rec.py", "recpack"),
                        limit="camera", flags=["--resize", "256", "--num-thread", "2"],
                        extra={"recpack": ["--inter-method", "9"]}),
    "passthrough": dict(title="4a. --pass-through (imagenet files, ~43 KB, cycled)",
                        dataset="imagenet", sizes="passthrough", cycle=True,
                        tools=("im2rec.py", "recpack"), limit="cat",
                        flags=["--pass-through", "--num-thread", "2"]),
    "passthrough-photos": dict(title="4b. --pass-through (photos files, ~95 KB, cycled)",
                               dataset="photos", only="passthrough", sizes="passthrough",
                               cycle=True, tools=("im2rec.py", "recpack"), limit="cat",
                               flags=["--pass-through", "--num-thread", "2"]),
}

#: Reference tools a pair's limit can be (instead of the codec limit): run alternately with
#: the pair's tools on the same lists; the limit is their marginal speed.
REFERENCES = ("cat",)
REFERENCE_NOTES = {"cat": "the same files in list order into one file, then `sync` of it: "
                          "recpack fsyncs its output too"}

#: Targets: recpack/baseline ratio and fraction of the codec limit (None: no target).
TARGETS = {"resize": (1.1, 0.95), "gluon": (None, 0.90), "camera": (4.0, None),
           "camera-area": (4.0, None), "passthrough": (2.0, 0.70),
           "passthrough-photos": (2.0, 0.70)}
MEMORY_FLAT = 1.2  # "flat": peak RSS at the long list <= 1.2 x the peak at the short one

GLUON_SNIPPET = """\
import sys
import mxnet_recpack
from mxnet.gluon.data.vision import transforms
lst, root, out = sys.argv[1:4]
mxnet_recpack.ImageListDataset(lst, root=root).transform_first(
    transforms.Compose([transforms.Resize(256, keep_ratio=True)])).to_recordio(out, num_workers=2)
"""

NAIVE_GLUON_SNIPPET = """\
import os, sys
import mxnet as mx
from mxnet import gluon
from mxnet.gluon.data.vision import transforms
lst, root, out = sys.argv[1:4]

class Images(gluon.data.Dataset):
    items = [line.rstrip("\\n").split("\\t") for line in open(lst)]
    resize = transforms.Resize(256, keep_ratio=True)
    def __len__(self):
        return len(self.items)
    def __getitem__(self, i):
        parts = self.items[i]
        with open(os.path.join(root, parts[-1]), "rb") as f:
            return self.resize(mx.image.imdecode(f.read())), float(parts[1]), int(parts[0])

def as_list(samples):  # images differ in size: keep the batch a list
    return samples

record = mx.recordio.MXIndexedRecordIO(out[:-4] + ".idx", out, "w")
for batch in gluon.data.DataLoader(Images(), batch_size=32, num_workers=2, batchify_fn=as_list):
    for img, label, key in batch:
        header = mx.recordio.IRHeader(0, label, key, 0)
        record.write_idx(key, mx.recordio.pack_img(header, img.asnumpy()[:, :, ::-1],
                                                   quality=95, img_fmt=".jpg"))
record.close()
"""


# -- environment ------------------------------------------------------------------------------
def im2rec_script():
    """Path of MXNet's ``tools/im2rec.py`` (found without importing mxnet)."""
    spec = importlib.util.find_spec("mxnet")
    return os.path.join(os.path.dirname(spec.origin), "tools", "im2rec.py")


def recpack_command():
    """The ``recpack`` console script beside this interpreter, else ``python -m mxnet_recpack``."""
    script = os.path.join(os.path.dirname(sys.executable), "recpack")
    return [script] if os.access(script, os.X_OK) else [sys.executable, "-m", "mxnet_recpack"]


def publish(lines, out=None):
    """Print a Markdown report and, with ``out``, write it there too."""
    report = "\n".join(lines)
    print(report)
    if out:
        with open(out, "w") as f:
            f.write(report + "\n")


def verdict(met):
    """A table cell: None -> reported, True -> met, False -> **not met**."""
    return "reported" if met is None else ("met" if met else "**not met**")


def machine_info():
    """CPU model, cores, RAM and library versions, as a dict of strings."""
    model = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            model = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    import cv2
    import numpy
    return {"cpu": model, "cores": str(os.cpu_count()),
            "ram": "%.1f GB" % (psutil.virtual_memory().total / 1e9),
            "python": platform.python_version(), "mxnet": importlib.metadata.version("mxnet"),
            "opencv": cv2.__version__, "numpy": numpy.__version__}


# -- data -------------------------------------------------------------------------------------
def ensure_dataset(name, count):
    """Generate (once, cached) a dataset of at least ``count`` images and its full list.

    Returns
    -------
    (str, str)
        The image root and the ``.lst`` listing every image (``--no-shuffle`` order).
    """
    from mxnet_recpack import make_list
    from mxnet_recpack.samples import make_image_folder
    spec = DATASETS[name]
    per_class = -(-count // spec["classes"])
    folder = os.path.join(DATA_DIR, "%s-%dx%d-%d-%d-q%d-s%d" % (
        name, spec["classes"], per_class, spec["long_side"][0], spec["long_side"][1],
        spec["quality"], spec["seed"]))
    root, prefix = os.path.join(folder, "images"), os.path.join(folder, "full")
    if not os.path.exists(os.path.join(folder, "complete")):
        shutil.rmtree(folder, ignore_errors=True)
        print("generating %s: %d images in %s" % (name, spec["classes"] * per_class, folder),
              file=sys.stderr)
        make_image_folder(root, classes=spec["classes"], per_class=per_class,
                          long_side=spec["long_side"], quality=spec["quality"], seed=spec["seed"])
        make_list(root, prefix, recursive=True, shuffle=False)
        open(os.path.join(folder, "complete"), "w").close()
    return root, prefix + ".lst"


def write_list(full_list, count, path, cycle=False):
    """Write the first ``count`` lines of ``full_list`` to ``path``.

    With ``cycle``, repeat the lines as often as needed with new unique indices 0..count-1
    (same files), so a list can be longer than the dataset.
    """
    with open(full_list) as f:
        lines = [l.rstrip("\n").split("\t") for l in f if l.strip()]
    if not cycle and count > len(lines):
        raise ValueError("%s has %d lines, %d wanted" % (full_list, len(lines), count))
    with open(path, "w") as f:
        for i in range(count):
            parts = lines[i % len(lines)]
            f.write("\t".join([str(i) if cycle else parts[0]] + parts[1:]) + "\n")
    return path


def write_file_list(lst, root, path):
    """The image paths of ``lst`` (under ``root``), one a line, in list order (what ``cat``
    reads)."""
    with open(lst) as f, open(path, "w") as out:
        for line in f:
            if line.strip():
                out.write(os.path.join(root, line.rstrip("\n").split("\t")[-1]) + "\n")
    return path


def warm_up(roots):
    """Read every image once and import the heavy modules once (both untimed)."""
    for root in roots:
        for folder, _, files in os.walk(root):
            for name in files:
                with open(os.path.join(folder, name), "rb") as f:
                    f.read()
    subprocess.run([sys.executable, "-c", "import mxnet, cv2, mxnet_recpack, mxnet_recpack.cli, "
                    "mxnet_recpack.pack, mxnet_recpack.pipeline.writer"], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=TOOL_ENV)


# -- measuring --------------------------------------------------------------------------------
def _poll_rss(pid, stop, peak, seen):
    """Until ``stop`` is set, record in ``peak[0]`` the largest RSS summed over the tree.

    Every descendant seen is added to ``seen`` so the caller can wait for stragglers.
    """
    try:
        root = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return
    while True:
        total = 0
        try:
            procs = root.children(recursive=True)
        except psutil.NoSuchProcess:
            procs = []
        seen.update(procs)
        for p in [root] + procs:
            try:
                total += p.memory_info().rss
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass
        peak[0] = max(peak[0], total)
        if stop.wait(POLL_S):
            return


def _busy_seconds():
    """CPU seconds the whole machine has spent not idle since boot."""
    t = psutil.cpu_times()
    return sum(t) - t.idle - getattr(t, "iowait", 0.0)


def measure(cmd, log_path, env=None, cwd=None):
    """Run ``cmd`` to completion; wall and CPU seconds and peak RSS (MB) of its process tree.

    CPU comes from ``getrusage(RUSAGE_CHILDREN)`` deltas (reaped descendants), RSS from psutil
    polling every ``POLL_S`` seconds. ``background`` is the share of the machine that other
    processes used meanwhile (a busy machine makes the numbers unreliable).
    """
    os.sync()  # flush earlier runs' writes now, not during this run
    before, busy = resource.getrusage(resource.RUSAGE_CHILDREN), _busy_seconds()
    peak, stop, seen = [0], threading.Event(), set()
    with open(log_path, "wb") as log:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                env=TOOL_ENV if env is None else env, cwd=cwd)
        poller = threading.Thread(target=_poll_rss, args=(proc.pid, stop, peak, seen))
        poller.start()
        try:
            code = proc.wait()
        finally:
            wall = time.perf_counter() - start
            stop.set()
            poller.join()
    after, busy = resource.getrusage(resource.RUSAGE_CHILDREN), _busy_seconds() - busy
    psutil.wait_procs(list(seen), timeout=30)  # orphaned workers must not overlap the next run
    if code != 0:
        with open(log_path, errors="replace") as f:
            raise RuntimeError("%s exited with %d:\n%s"
                               % (shlex.join(cmd), code, f.read()[-2000:]))
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    cores = os.cpu_count()
    return {"wall": wall, "cpu": cpu, "rss_mb": peak[0] / 1e6, "util": cpu / wall / cores,
            "background": max(0.0, busy - cpu) / wall / cores}


def tool_command(tool, prefix, root, flags, extra=None):
    """Command line of ``tool`` packing ``prefix.lst`` (images in ``root``) to ``prefix.rec``;
    ``extra`` maps a tool to flags only it gets."""
    flags = list(flags) + list((extra or {}).get(tool, []))
    if tool == "im2rec.py":
        return [sys.executable, im2rec_script(), prefix, root] + flags
    if tool == "recpack":
        return recpack_command() + ["im2rec", prefix, root] + flags
    if tool == "cat":  # the list's files, in its order, into one file, then fsync'd as recpack's
        return ["sh", "-c", 'xargs -d "\\n" -a "$0" cat > "$1" && sync "$1"', prefix + ".files",
                prefix + ".rec"]
    snippet = {"gluon": GLUON_SNIPPET, "naive-gluon": NAIVE_GLUON_SNIPPET}[tool]
    return [sys.executable, "-c", snippet, prefix + ".lst", root, prefix + ".rec"]


def remove_outputs(prefix):
    """Delete what a run on ``prefix.lst`` wrote (the list and the log stay)."""
    for ext in (".rec", ".idx", ".failures.jsonl"):
        if os.path.exists(prefix + ext):
            os.remove(prefix + ext)


def output_check(prefix, digest=True):
    """Record count (``.idx`` lines) and SHA-256 (if ``digest``) of the ``.rec`` just written."""
    with open(prefix + ".idx", "rb") as f:
        records = sum(1 for _ in f)
    if not digest:
        return records, None
    sha = hashlib.sha256()
    with open(prefix + ".rec", "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            sha.update(block)
    return records, sha.hexdigest()


def run_alternating(group, tools, lists, root, flags, repeat, keep, digest=True, extra=None):
    """Run ``tools`` alternately on each list ``repeat`` times; medians per tool and size.

    Parameters
    ----------
    group : str
        Names the run folder ``_data/runs/GROUP/TOOL-SIZE/``.
    lists : dict
        Size label -> ``(image count, full list, cycle)``; see :func:`write_list`.
    digest : bool
        Hash the first run's ``.rec`` of each tool and size (to compare tools' bytes).

    Returns
    -------
    dict
        ``result[tool][size]``: ``n``, medians of wall/cpu/rss_mb/util/background, the
        individual ``runs``, and ``records``/``sha256`` of the first run's output.
    """
    result, prefixes = {tool: {} for tool in tools}, {}
    for size, (count, full_list, cycle) in lists.items():
        for tool in tools:
            folder = os.path.join(DATA_DIR, "runs", group, "%s-%s" % (tool, size))
            os.makedirs(folder, exist_ok=True)
            prefixes[tool, size] = prefix = os.path.join(folder, "data")
            write_list(full_list, count, prefix + ".lst", cycle)
            if tool in REFERENCES:
                write_file_list(prefix + ".lst", root, prefix + ".files")
            result[tool][size] = {"n": count, "runs": []}
    for rep in range(repeat):
        for size in lists:
            for tool in tools:
                prefix, entry = prefixes[tool, size], result[tool][size]
                remove_outputs(prefix)
                run = measure(tool_command(tool, prefix, root, flags, extra), prefix + ".log")
                entry["runs"].append(run)
                if rep == 0:
                    entry["bytes"] = os.path.getsize(prefix + ".rec")
                    entry["records"], entry["sha256"] = (None, None) if tool in REFERENCES \
                        else output_check(prefix, digest)
                print("  %-20s %-11s %-6s n=%-6d %6.2f s  (background load %.0f%%)"
                      % (group, tool, size, entry["n"], run["wall"], run["background"] * 100),
                      file=sys.stderr)
    for (tool, size), prefix in prefixes.items():
        entry = result[tool][size]
        entry.update({k: statistics.median(r[k] for r in entry["runs"])
                      for k in ("wall", "cpu", "rss_mb", "util", "background")})
        if not keep:
            remove_outputs(prefix)
    return result


def marginal(small, large, what="n"):
    """Images/s between two runs: extra images (``what="bytes"``: bytes written) over extra
    seconds (start-up cancels).

    ``None`` when the large run was not slower (lists too short for the machine's noise).
    """
    dt = large["wall"] - small["wall"]
    return (large[what] - small[what]) / dt if dt > 0 else None


def marginal_cpu(small, large):
    """CPU seconds (whole process tree) per extra image between two runs."""
    return (large["cpu"] - small["cpu"]) / (large["n"] - small["n"])


def codec_limit(full_list, root, count, interpolation, repeat=1):
    """CPU seconds per image of imread + im2rec's short-edge resize + imencode(q95), 1 thread.

    The first images are processed once untimed, so the allocator and codec are warm; the
    list is then timed ``repeat`` times and the median kept (one pass varies by up to 15% on
    a shared virtual machine).

    Returns
    -------
    dict
        ``n``, ``cpu_per_image`` (s) and ``limit`` (images/s with every core busy).
    """
    import cv2
    cv2.setNumThreads(1)
    with open(full_list) as f:
        paths = [l.rstrip("\n").split("\t")[-1] for l in f if l.strip()][:count]

    def one(rel):
        img = cv2.imread(os.path.join(root, rel), cv2.IMREAD_COLOR)
        h, w = img.shape[:2]
        size = (256, h * 256 // w) if h > w else (w * 256 // h, 256)
        ok, _ = cv2.imencode(".jpg", cv2.resize(img, size, interpolation=interpolation),
                             [cv2.IMWRITE_JPEG_QUALITY, 95])
        assert ok

    for rel in paths[:10]:
        one(rel)
    passes = []
    for _ in range(repeat):
        start = time.process_time()
        for rel in paths:
            one(rel)
        passes.append((time.process_time() - start) / len(paths))
    cpu = statistics.median(passes)
    return {"n": len(paths), "cpu_per_image": cpu, "limit": os.cpu_count() / cpu,
            "passes": passes}


# -- workloads --------------------------------------------------------------------------------
def run_pair(name, args, sizes, data, runs):
    """Side-by-side workload ``PAIRS[name]`` on its small and large lists; fills ``runs``."""
    spec = PAIRS[name]
    root, full_list = data[spec["dataset"]]
    small, large = sizes[spec.get("sizes", spec["dataset"])]
    lists = {size: (count, full_list, spec.get("cycle", False))
             for size, count in (("small", small), ("large", large))}
    tools = spec["tools"] + ((spec["limit"],) if spec["limit"] in REFERENCES else ())
    r = runs[name] = run_alternating(name, tools, lists, root, spec["flags"],
                                     args.repeat, args.keep, extra=spec.get("extra"))
    base, ours = spec["tools"]
    speed = {t: marginal(r[t]["small"], r[t]["large"]) for t in tools}
    ratio = speed[ours] / speed[base] if speed[ours] and speed[base] else None
    out = {"marginal": speed, "ratio": ratio,
           "mb_per_s": {t: marginal(r[t]["small"], r[t]["large"], "bytes") for t in tools},
           "cpu_ms": {t: marginal_cpu(r[t]["small"], r[t]["large"]) * 1e3 for t in tools},
           "records": {t: [r[t][s]["records"] for s in lists] for t in (base, ours)},
           "identical": all(r[base][s]["sha256"] == r[ours][s]["sha256"] for s in lists)}
    if spec["dataset"] == "camera":
        out["psnr"] = camera_quality(spec, root, full_list)
    return out


def camera_quality(spec, root, full_list, count=20):
    """Mean PSNR (dB) of each tool's stored images against a full decode + INTER_AREA resize
    to the same size: how close each tool's fast or plain resize is to the best reference."""
    import cv2
    import numpy as np
    folder = os.path.join(DATA_DIR, "runs", "camera-quality")
    os.makedirs(folder, exist_ok=True)
    result = {}
    for tool in spec["tools"]:
        prefix = os.path.join(folder, tool.replace(".", "_"))
        write_list(full_list, count, prefix + ".lst", False)
        remove_outputs(prefix)
        subprocess.run(tool_command(tool, prefix, root, spec["flags"], spec.get("extra")),
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        scores = []
        with open(prefix + ".lst") as f:
            rels = {int(l.split("\t")[0]): l.rstrip("\n").split("\t")[-1] for l in f}
        from mxnet_recpack import RecordFile
        with RecordFile(prefix + ".rec") as rf:
            for key in rf.keys:
                _, body = rf.read_image(key)
                got = cv2.imdecode(np.frombuffer(bytes(body), np.uint8), cv2.IMREAD_COLOR)
                full = cv2.imread(os.path.join(root, rels[key]), cv2.IMREAD_COLOR)
                ref = cv2.resize(full, (got.shape[1], got.shape[0]), interpolation=cv2.INTER_AREA)
                mse = np.mean((got.astype(np.float64) - ref) ** 2)
                scores.append(10 * np.log10(255.0 ** 2 / mse))
        result[tool] = float(np.mean(scores))
        remove_outputs(prefix)
    return result


def run_startup(args, sizes, data, runs):
    """Whole-process wall time of each tool on a short list: default options, pass-through."""
    root, full_list = data["imagenet"]
    lists = {"n%d" % sizes["startup"]: (sizes["startup"], full_list, False)}
    for mode, flags in (("default", []), ("pass-through", ["--pass-through"])):
        runs["startup-" + mode] = run_alternating("startup-" + mode, ("im2rec.py", "recpack"),
                                                  lists, root, flags, args.repeat, args.keep)


def run_memory(args, sizes, data, runs):
    """Peak RSS of ``recpack im2rec --pass-through --num-thread 2`` on a short and a long list.

    One run per size (the long list writes gigabytes); the lists cycle through the imagenet
    lines with new unique keys.
    """
    root, full_list = data["imagenet"]
    lists = {"n%d" % n: (n, full_list, True) for n in sizes["memory"]}
    r = runs["memory"] = run_alternating("memory", ("recpack",), lists, root,
                                         ["--pass-through", "--num-thread", "2"], 1, args.keep,
                                         digest=False)
    short, long_ = (r["recpack"]["n%d" % n] for n in sizes["memory"])
    return {"short": short["rss_mb"], "long": long_["rss_mb"],
            "growth": long_["rss_mb"] / short["rss_mb"]}


# -- report -----------------------------------------------------------------------------------
def _fmt(x, spec="%.0f"):
    return "n/a" if x is None else spec % x


def _verdict(conditions):
    return "met" if all(conditions) else "**not met**"


def _pair_row(name, summary, runs, codec):
    spec, (want_ratio, want_frac) = PAIRS[name], TARGETS[name]
    base, ours = spec["tools"]
    big = {t: runs[name][t]["large"] for t in (base, ours)}
    reference = spec["limit"] if spec["limit"] in REFERENCES else None
    limit = summary["marginal"][reference] if reference else \
        codec.get(spec["limit"], {}).get("limit")
    frac = summary["marginal"][ours] / limit if limit and summary["marginal"][ours] else None
    target, cond = [], []
    if want_frac:
        target.append(">= %d%% of %s" % (round(want_frac * 100), reference or "limit"))
        cond.append(frac is not None and frac >= want_frac)
    if want_ratio:
        target.append(">= %.1fx %s" % (want_ratio, base))
        cond.append(summary["ratio"] is not None and summary["ratio"] >= want_ratio)
    counts = {t: "+".join(map(str, summary["records"][t])) for t in (base, ours)}
    records = ("records equal (%s)" % counts[ours] if counts[base] == counts[ours] else
               "records **DIFFER** (%s %s, %s %s)" % (base, counts[base], ours, counts[ours]))
    check = "%s, bytes %s; large list whole run %.2f s : %.2f s" % (
        records, "identical" if summary["identical"] else "differ", big[base]["wall"],
        big[ours]["wall"])
    if reference:
        tools = (base, ours, reference)
        check += ("; %s (%s) %s img/s; marginal MB/s %s; CPU ms/img (process tree) %s" % (
            reference, REFERENCE_NOTES[reference], _fmt(limit),
            " : ".join(_fmt(summary["mb_per_s"][t] and summary["mb_per_s"][t] / 1e6)
                       for t in tools),
            " : ".join("%.3f" % summary["cpu_ms"][t] for t in tools))) + \
            " (%s : %s : %s)" % tools
    if "psnr" in summary:
        psnr = summary["psnr"]
        check += "; PSNR vs full decode + area resize %.1f dB : %.1f dB" % (psnr[base],
                                                                          psnr[ours])
        target.append("PSNR >= 35 dB")
        cond.append(psnr[ours] >= 35)
    return [spec["title"], "marginal img/s (%s : %s)" % (base, ours),
            _fmt(summary["marginal"][base]), _fmt(summary["marginal"][ours]),
            _fmt(summary["ratio"], "%.2fx"), _fmt(frac and frac * 100, "%.0f%%"),
            "%.0f%% / %.0f%%" % (big[base]["util"] * 100, big[ours]["util"] * 100),
            "%.0f / %.0f" % (big[base]["rss_mb"], big[ours]["rss_mb"]), check,
            ", ".join(target), _verdict(cond)]


def result_rows(summary, runs):
    """Rows of the results table, one per measured quantity."""
    codec = summary.get("codec", {})
    rows = [_pair_row(name, summary[name], runs, codec) for name in PAIRS if name in summary]
    for mode in ("default", "pass-through"):
        for size, b in runs.get("startup-" + mode, {}).get("im2rec.py", {}).items():
            o = runs["startup-" + mode]["recpack"][size]
            rows.append(["5. start-up, %d images, %s options" % (b["n"], mode),
                         "whole-process s (im2rec.py : recpack)", "%.2f" % b["wall"],
                         "%.2f" % o["wall"], "%.2fx" % (b["wall"] / o["wall"]), "",
                         "%.0f%% / %.0f%%" % (b["util"] * 100, o["util"] * 100),
                         "%.0f / %.0f" % (b["rss_mb"], o["rss_mb"]), "", "reported",
                         "reported"])
    for name, c in codec.items():
        rows.append(["6. codec limit, %s (%d images)" % (name, c["n"]),
                     "limit **%.0f img/s** on %d cores (%.2f ms CPU/img)" % (
                         c["limit"], os.cpu_count(), c["cpu_per_image"] * 1e3),
                     "", "", "", "", "", "", c["what"], "", ""])
    if "memory" in summary:
        m = summary["memory"]
        (s, l) = runs["memory"]["recpack"].values()
        rows.append(["7. memory, recpack --pass-through, %d vs %d entries" % (s["n"], l["n"]),
                     "peak RSS **%.0f MB -> %.0f MB**" % (m["short"], m["long"]), "", "",
                     "%.2fx" % m["growth"], "", "", "",
                     "wall %.1f s / %.1f s" % (s["wall"], l["wall"]),
                     "long <= %.1fx short" % MEMORY_FLAT, _verdict([m["growth"] <= MEMORY_FLAT])])
    return rows


def render(info, command, summary, runs, sizes, args):
    """The Markdown report: machine, command line, results table, per-run medians."""
    background = [r["background"] for g in runs.values() for t in g.values()
                  for e in t.values() for r in e["runs"]]
    lines = ["## Benchmark: recpack vs tools/im2rec.py", "",
             "- Machine: %s, %s cores, %s RAM" % (info["cpu"], info["cores"], info["ram"]),
             "- Python %s, mxnet %s, OpenCV %s, numpy %s" % (
                 info["python"], info["mxnet"], info["opencv"], info["numpy"]),
             "- Command: `%s`" % command,
             "- Mode: %s, %d repeat(s), median per tool and size; lists: imagenet %d/%d, camera "
             "%d/%d, pass-through %d/%d images" % (
                 "quick" if args.quick else "default", args.repeat, *sizes["imagenet"],
                 *sizes["camera"], *sizes["passthrough"])]
    if background:
        lines.append("- Other processes' CPU use during the runs: median %.0f%%, max %.0f%% of "
                     "the machine%s" % (statistics.median(background) * 100,
                                        max(background) * 100,
                                        " (**busy machine: numbers are unreliable**)"
                                        if max(background) > 0.1 else ""))
    lines += ["", "| Workload | Metric | Baseline | recpack | Ratio | % of limit (codec, or cat) | "
              "CPU util, large (base / recpack) | Peak RSS MB, large (base / recpack) | "
              "Check, notes | Target | Met |",
              "|---|---|---:|---:|---:|---:|---:|---:|---|---|---|"]
    lines += ["| " + " | ".join(row) + " |" for row in result_rows(summary, runs)]
    if runs:
        lines += ["", "Per-run medians:", "", "| Group | Tool | Size | Images | Wall s | CPU s | "
                  "CPU util | Peak RSS MB | Background |",
                  "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for group, by_tool in runs.items():
        for tool, by_size in by_tool.items():
            for size, e in by_size.items():
                lines.append("| %s | %s | %s | %d | %.2f | %.2f | %.0f%% | %.0f | %.0f%% |" % (
                    group, tool, size, e["n"], e["wall"], e["cpu"], e["util"] * 100,
                    e["rss_mb"], e["background"] * 100))
    return "\n".join(lines) + "\n"


# -- main -------------------------------------------------------------------------------------
def parse_args(argv=None):
    """Command-line options (see the module docstring)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="small sizes, one repeat (< 2 minutes)")
    p.add_argument("--repeat", type=int, default=None,
                   help="runs per tool and size, median kept (default 3, --quick 1)")
    p.add_argument("--only", default=",".join(WORKLOAD_NAMES),
                   help="comma-separated subset of: %s" % ", ".join(WORKLOAD_NAMES))
    p.add_argument("--keep", action="store_true", help="keep the .rec/.idx outputs")
    p.add_argument("--out", help="also write the Markdown report to this file")
    p.add_argument("--json", help="write the raw numbers to this JSON file")
    args = p.parse_args(argv)
    args.only = [w.strip() for w in args.only.split(",") if w.strip()]
    unknown = sorted(set(args.only) - set(WORKLOAD_NAMES))
    if unknown:
        p.error("unknown workload(s) %s; choose from %s" % (unknown, ", ".join(WORKLOAD_NAMES)))
    if args.repeat is None:
        args.repeat = 1 if args.quick else 3
    if args.repeat < 1:
        p.error("--repeat must be >= 1")
    return args


def main(argv=None):
    args = parse_args(argv)
    began = time.perf_counter()
    sizes = SIZES["quick" if args.quick else "default"]
    command = shlex.join([os.path.basename(sys.executable)] + sys.argv)
    info = machine_info()
    wanted = set(args.only)
    data = {"imagenet": ensure_dataset("imagenet", sizes["imagenet"][1])}
    if wanted & {"camera", "codec"}:
        data["camera"] = ensure_dataset("camera", sizes["camera"][1])
    if "passthrough" in wanted:
        data["photos"] = ensure_dataset("photos", PHOTO_FILES)
    warm_up([root for root, _ in data.values()])
    summary, runs = {}, {}
    if wanted & {"codec", "resize", "gluon", "camera"}:
        import cv2
        summary["codec"] = {}
        for key, name, inter in (("imagenet", "imagenet", "INTER_LINEAR"),
                                 ("camera", "camera", "INTER_LINEAR"),
                                 ("camera-area", "camera", "INTER_AREA")):
            if name in data:
                c = codec_limit(data[name][1], data[name][0], sizes[name][1],
                                getattr(cv2, inter), args.repeat)
                c["what"] = "imread + resize %s + imencode q95" % inter
                summary["codec"][key] = c
    for name, spec in PAIRS.items():
        if spec.get("only", name) in wanted:
            summary[name] = run_pair(name, args, sizes, data, runs)
    if "startup" in wanted:
        run_startup(args, sizes, data, runs)
    if "memory" in wanted:
        summary["memory"] = run_memory(args, sizes, data, runs)
    report = render(info, command, summary, runs, sizes, args)
    report += "\nBenchmark wall time: %.0f s\n" % (time.perf_counter() - began)
    print(report)
    if args.out:
        with open(args.out, "w") as f:
            f.write(report)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": info, "command": command, "sizes": sizes,
                       "repeat": args.repeat, "summary": summary, "runs": runs}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
