#!/usr/bin/env python
"""Benchmark ``recpack convert`` between RecordIO and webdataset, TFRecord, MDS and Parquet, in
one run, against copying the same bytes (``cp`` + ``sync``) and against the scripts users write
with each format's own library.

The ``.rec`` (about ``--size-mb`` of pass-through JPEGs, the ``imagenet`` images of
``bench.py`` cycled) is made once and cached in ``benchmarks/_data/files/``. Every run is a
subprocess (start-up included) on a warm page cache, followed by ``sync`` of what it wrote, on
the same disk (``benchmarks/_data/formats/``); the runs of one round alternate (cp, recpack to
the format, recpack back, the library's script, for each format in turn), each after the disk
has settled, and the median of ``--repeat`` rounds is kept. Memory: peak RSS of ``recpack
convert`` from ``.rec`` files of 10,000 and 100,000 tiny JPEGs into each format.
"""

import argparse
import filecmp
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench  # noqa: E402
from bench import DATA_DIR, TOOL_ENV, ensure_dataset, measure, publish, verdict  # noqa: E402
from bench_files import big_file, settle  # noqa: E402

FORMATS = ("webdataset", "tfrecord", "mds", "parquet")
#: recpack's throughput (both ways) as a share of cp + sync's, at least
CP_TARGET = {"webdataset": 0.7, "tfrecord": 0.7, "mds": 0.7, "parquet": 0.5}
SCRIPT_TARGET = 1.5  # recpack .rec -> X at least this many times as fast as the library's script
MEMORY_FLAT = 1.2  # peak RSS at 100,000 records <= 1.2 x the peak at 10,000
#: Tiny JPEGs for the memory runs (so 100,000 records convert in seconds).
bench.DATASETS.setdefault("tiny", dict(classes=10, long_side=(24, 48), quality=80, seed=2))

# -- the users' scripts -----------------------------------------------------------------------
#: Reading the .rec: MXNet's own reader, where MXNet and the library import together ...
READ_MXNET = """\
import mxnet as mx

def records(rec):
    r = mx.recordio.MXIndexedRecordIO(rec[:-4] + ".idx", rec, "r")
    for key in r.keys:
        header, image = mx.recordio.unpack(r.read_idx(key))
        yield key, header.label, image
"""

#: ... else what a user without MXNet writes: the .idx, then each record's frames (dmlc splits
#: a record where its payload holds the magic word; the reader puts the word back).
READ_PURE = """\
import struct

MAGIC = struct.pack("<I", 0xCED7230A)

def records(rec):
    with open(rec[:-4] + ".idx") as f:
        index = [line.split("\\t") for line in f if line.strip()]
    with open(rec, "rb") as f:
        for key, offset in index:
            f.seek(int(offset))
            parts = []
            while True:
                magic, lrec = struct.unpack("<II", f.read(8))
                length = lrec & ((1 << 29) - 1)
                parts.append(f.read(length))
                if lrec >> 29 in (0, 3):
                    break
                f.seek(-length % 4, 1)
            payload = MAGIC.join(parts)
            flag, label = struct.unpack("<If", payload[:8])
            yield int(key), label, payload[24 + 4 * flag:]
"""

WRITE = {
    "webdataset": """\
import os, sys
import webdataset as wds
rec, out = sys.argv[1:3]
os.makedirs(out)
with wds.ShardWriter(os.path.join(out, "shard-%06d.tar"), maxsize=1 << 30, verbose=0) as sink:
    for key, label, image in records(rec):
        sink.write({"__key__": "%09d" % key, "jpg": image, "cls": int(label)})
""",
    "tfrecord": """\
import os, sys
from tfrecord import TFRecordWriter
rec, out = sys.argv[1:3]
os.makedirs(out)
writer = TFRecordWriter(os.path.join(out, "train.tfrecord"))
for key, label, image in records(rec):
    writer.write({"image/encoded": (image, "byte"), "image/class/label": (int(label), "int")})
writer.close()
""",
    "mds": """\
import sys
rec, out = sys.argv[1:3]
with MDSWriter(out=out, columns={"image": "bytes", "label": "int"}) as writer:
    for key, label, image in records(rec):
        writer.write({"image": image, "label": int(label)})
""",
    "parquet": """\
import os, sys
import datasets
rec, out = sys.argv[1:3]

def samples():
    for key, label, image in records(rec):
        yield {"image": {"bytes": image, "path": None}, "label": int(label)}

features = datasets.Features({"image": datasets.Image(), "label": datasets.Value("int64")})
os.makedirs(out)
datasets.Dataset.from_generator(samples, features=features).to_parquet(
    os.path.join(out, "train.parquet"))
""",
}

MDS_IMPORT = "from streaming import MDSWriter\n"
#: streaming installed with --no-deps: its ``__init__`` re-exports ``streaming.vision`` and
#: ``StreamingDataLoader``, which need torchvision and transformers; the writer needs neither.
MDS_IMPORT_MODULE = """\
import importlib, importlib.util, os, sys, types
_root = os.path.dirname(importlib.util.find_spec("streaming").origin)
for _name, _path in (("streaming", _root), ("streaming.base", os.path.join(_root, "base"))):
    sys.modules[_name] = types.ModuleType(_name)
    sys.modules[_name].__path__ = [_path]
MDSWriter = importlib.import_module("streaming.base.format.mds.writer").MDSWriter
"""

READ_ONLY = """\
import sys
n = sum(len(image) for key, label, image in records(sys.argv[1]))
"""

LIBRARY = {"webdataset": "webdataset.ShardWriter", "tfrecord": "tfrecord.TFRecordWriter",
           "mds": "streaming's MDSWriter", "parquet": "datasets from_generator + to_parquet"}


def imports(python, code):
    return subprocess.run([python, "-c", code], capture_output=True).returncode == 0


def scripts(nomx_python):
    """For each format: (python, script, how it reads the .rec)."""
    mds = MDS_IMPORT if imports(nomx_python, MDS_IMPORT) else MDS_IMPORT_MODULE
    out = {}
    for fmt in FORMATS:
        if fmt == "webdataset" and imports(sys.executable, "import mxnet, webdataset"):
            out[fmt] = (sys.executable, READ_MXNET + WRITE[fmt], "MXIndexedRecordIO")
        else:
            prelude = mds if fmt == "mds" else ""
            out[fmt] = (nomx_python, prelude + READ_PURE + WRITE[fmt], "pure-Python reader")
    return out, mds is MDS_IMPORT


# -- running ----------------------------------------------------------------------------------
def synced(cmd, *outputs):
    """``cmd`` (a list, or a shell line), then ``sync`` of the files in each output folder
    (their fsync, as cp + sync has)."""
    line = cmd if isinstance(cmd, str) else shlex.join(cmd)
    return ["sh", "-c", line + " && sync " + " ".join(shlex.quote(o) + "/*" for o in outputs)]


def read_through(path):
    with open(path, "rb") as f:
        while f.read(1 << 24):
            pass


def clear(*paths):
    for path in paths:
        if os.path.isdir(path):
            shutil.rmtree(path)
        elif os.path.exists(path):
            os.unlink(path)


def size_of(folder):
    return sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder))


class Runs:
    """Every measured run, by name; each after the disk has settled."""

    def __init__(self, work, env):
        self.work, self.env, self.got = work, env, {}

    def run(self, name, cmd, clean=()):
        clear(*clean)
        settle()
        got = measure(cmd, os.path.join(self.work, "log.txt"), env=self.env)
        if name:
            self.got.setdefault(name, []).append(got)
        return got

    def median(self, name, field):
        return statistics.median(g[field] for g in self.got[name])


def records_for(full_list, root, size_mb):
    """Records of the cycled list that add up to ``size_mb`` of images."""
    with open(full_list) as f:
        sizes = [os.path.getsize(os.path.join(root, l.rstrip("\n").split("\t")[-1]))
                 for l in f if l.strip()]
    total, n = 0, 0
    while total < size_mb * 1e6:
        total += sizes[n % len(sizes)] + 32
        n += 1
    return n


def tiny_files(counts):
    root, full_list = ensure_dataset("tiny", 1000)
    folder = os.path.join(DATA_DIR, "formats-memory")
    os.makedirs(folder, exist_ok=True)
    return [big_file(root, full_list, n, folder) for n in counts]


def convert(recpack, src, dst, fmt=None):
    return recpack + ["convert", "-q", src, dst] + (["--to", fmt] if fmt else [])


def round_of(runs, rec, recpack, users, check):
    """One round: per format, cp + sync, recpack there, recpack back, the library's script."""
    work = runs.work
    copy, back, out, user = (os.path.join(work, n) for n in ("copy", "back", "out", "user"))
    hf = runs.env["HF_DATASETS_CACHE"]
    sizes = {}
    for fmt in FORMATS:
        os.makedirs(copy)
        runs.run("cp", synced("cp %s %s && cp %s %s" % tuple(map(shlex.quote, (
            rec, os.path.join(copy, "copy.rec"), rec[:-4] + ".idx",
            os.path.join(copy, "copy.idx")))), copy))
        clear(copy)
        runs.run((fmt, "to"), synced(convert(recpack, rec, out, fmt), out), [out])
        sizes[fmt] = size_of(out)
        os.makedirs(back)
        runs.run((fmt, "back"), synced(convert(recpack, out, os.path.join(back, "back.rec")),
                                       back), [])
        if check:
            sizes[fmt, "same"] = all(filecmp.cmp(rec[:-4] + e, os.path.join(back, "back" + e),
                                                 shallow=False) for e in (".rec", ".idx"))
        clear(out, back)
        python, script, _ = users[fmt]
        runs.run((fmt, "script"), synced([python, "-c", script, rec, user], user), [hf])
        sizes[fmt, "script"] = size_of(user)
        clear(user, hf)
    return sizes


def warm_up(runs, rec, recpack, users, readers):
    """Untimed: the page cache holds the big file; every command runs once on a small file
    (imports compiled, the libraries' caches made), which also checks that each works."""
    read_through(rec)
    out, back, user = (os.path.join(runs.work, n) for n in ("out", "back", "user"))
    for fmt in FORMATS:
        runs.run(None, convert(recpack, rec, out, fmt), [out])
        os.makedirs(back)
        runs.run(None, convert(recpack, out, os.path.join(back, "back.rec")), [])
        python, script, _ = users[fmt]
        runs.run(None, [python, "-c", script, rec, user], [user])
        clear(out, back, user, runs.env["HF_DATASETS_CACHE"])
    for python, script in readers.values():
        runs.run(None, [python, "-c", script, rec])


def machine(nomx_python):
    """CPU, cores, RAM, the file system of ``benchmarks/_data`` and the versions that matter."""
    info = bench.machine_info()
    fs = subprocess.run(["df", "--output=fstype,target", DATA_DIR], capture_output=True,
                        text=True).stdout.split("\n")[1].split()
    options = ""
    with open("/proc/mounts") as f:
        for line in f:
            parts = line.split()
            if parts[1] == fs[1]:
                options = parts[3]
    libs = subprocess.run([nomx_python, "-c", "import importlib.metadata as m, platform; print("
                           "platform.python_version(), ', '.join('%s %s' % (p, m.version(p)) for "
                           "p in ('numpy', 'webdataset', 'tfrecord', 'mosaicml-streaming', "
                           "'pyarrow', 'datasets')))"], capture_output=True, text=True).stdout
    return ["- Machine: %s, %s cores, %s RAM; benchmarks/_data on %s (%s, mounted %s)" % (
                info["cpu"], info["cores"], info["ram"], fs[1], fs[0], options),
            "- Python %s, mxnet %s, numpy %s (the MXNet environment); .venv-nomx: Python %s" % (
                info["python"], info["mxnet"], info["numpy"], libs.strip())]


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size-mb", type=float, help="size of the .rec (default 1000; --quick 100)")
    p.add_argument("--repeat", type=int, help="rounds, the median is kept (default 3; --quick 1)")
    p.add_argument("--memory-records", type=int, nargs=2, metavar=("SMALL", "LARGE"),
                   help="records of the memory runs (default 10000 100000; --quick 2000 20000)")
    p.add_argument("--quick", action="store_true", help="a smoke run: numbers are rough")
    p.add_argument("--nomx-python", default=os.path.join(os.path.dirname(HERE), ".venv-nomx",
                                                         "bin", "python"),
                   help="the environment without MXNet, with the formats' libraries")
    p.add_argument("--out", help="also write the Markdown report to this file")
    args = p.parse_args(argv)
    args.size_mb = args.size_mb or (100 if args.quick else 1000)
    args.repeat = args.repeat or (1 if args.quick else 3)
    args.memory_records = args.memory_records or ((2000, 20000) if args.quick
                                                  else (10000, 100000))
    return args


def report(args, runs, rec, users, direct_mds, sizes, memory, lines, elapsed):
    size = os.path.getsize(rec) + os.path.getsize(rec[:-4] + ".idx")
    records = sum(1 for _ in open(rec[:-4] + ".idx"))
    cp_walls = [g["wall"] for g in runs.got["cp"]]
    cp = statistics.median(cp_walls)
    background = sorted(g["background"] for got in runs.got.values() for g in got)
    lines += ["- Command: `python benchmarks/bench_formats.py %s`" % " ".join(sys.argv[1:]),
              "- File: %.2f GB (.rec + .idx), %d records (pass-through JPEGs); warm page cache; "
              "cp + sync copies %.0f-%.0f MB/s in these runs" % (
                  size / 1e9, records, size / max(cp_walls) / 1e6, size / min(cp_walls) / 1e6),
              "- CPU used beside the runs' own (other processes, the kernel's writeback): "
              "median %.0f%%, max %.0f%% of the machine; benchmark wall time %.0f s" % (
                  100 * statistics.median(background), 100 * background[-1], elapsed),
              "- Scripts read the .rec with %s; MDSWriter imported %s" % (
                  ", ".join(sorted({"%s (%s)" % (u[2], f) for f, u in users.items()})),
                  "as `from streaming import MDSWriter`" if direct_mds else
                  "from `streaming.base.format.mds.writer` (`from streaming import MDSWriter` "
                  "fails here: streaming is installed --no-deps, its `__init__` needs "
                  "transformers and torchvision)"),
              "- Medians of %d round(s); MB/s = the .rec's bytes / wall time; %% of cp + sync "
              "= cp's wall / this wall" % args.repeat, "",
              "| Format | Conversion | Wall s | CPU s | MB/s | Output MB | % of cp + sync | "
              "recpack / script | Target | Met |",
              "|---|---|---:|---:|---:|---:|---:|---:|---|---|",
              "| (baseline) | cp + sync of .rec and .idx | %.2f | %.2f | %.0f | %.0f | 100%% | | "
              "| |" % (cp, runs.median("cp", "cpu"), size / cp / 1e6, size / 1e6)]
    for fmt in FORMATS:
        target = CP_TARGET[fmt]
        for way, what in (("to", ".rec -> %s, recpack" % fmt), ("back", "%s -> .rec, recpack"
                                                                 % fmt)):
            wall = runs.median((fmt, way), "wall")
            out = sizes[fmt] if way == "to" else size
            note = "" if way == "to" else (" (identical)" if sizes[fmt, "same"] else
                                           " (**differs**)")
            lines.append("| %s | %s%s | %.2f | %.2f | %.0f | %.0f | %.0f%% | | >= %d%% of cp + "
                         "sync | %s |" % (fmt, what, note, wall, runs.median((fmt, way), "cpu"),
                                          size / wall / 1e6, out / 1e6, 100 * cp / wall,
                                          100 * target, verdict(cp / wall >= target)))
        wall = runs.median((fmt, "script"), "wall")
        speedup = wall / runs.median((fmt, "to"), "wall")
        lines.append("| %s | .rec -> %s, %s (%s) | %.2f | %.2f | %.0f | %.0f | %.0f%% | %.2fx | "
                     "recpack >= %.1fx the script | %s |" % (
                         fmt, fmt, LIBRARY[fmt], users[fmt][2], wall,
                         runs.median((fmt, "script"), "cpu"), size / wall / 1e6,
                         sizes[fmt, "script"] / 1e6, 100 * cp / wall, speedup, SCRIPT_TARGET,
                         verdict(speedup >= SCRIPT_TARGET)))
    for name in ("MXIndexedRecordIO", "pure-Python reader"):
        if ("read", name) in runs.got:
            wall = runs.median(("read", name), "wall")
            lines.append("| (reading alone) | the scripts' loop over the .rec, %s, nothing "
                         "written%s | %.2f | %.2f | %.0f | | | | reported | reported |" % (
                             name, " (`import mxnet` included)" if "MX" in name else "",
                             wall, runs.median(("read", name), "cpu"), size / wall / 1e6))
    small, large = args.memory_records
    lines += ["", "Peak RSS (whole process tree) of `recpack convert` from a .rec of tiny JPEGs "
              "(one run each):", "",
              "| Conversion | %d records | %d records | Ratio | Wall s (small / large) | Target "
              "| Met |" % (small, large), "|---|---:|---:|---:|---:|---|---|"]
    for fmt in FORMATS:
        a, b = memory[fmt]
        ratio = b["rss_mb"] / a["rss_mb"]
        lines.append("| .rec -> %s | %.0f MB | %.0f MB | %.2fx | %.2f / %.2f | <= %.1fx | %s |"
                     % (fmt, a["rss_mb"], b["rss_mb"], ratio, a["wall"], b["wall"], MEMORY_FLAT,
                        verdict(ratio <= MEMORY_FLAT)))
    return lines


def main(argv=None):
    started = time.monotonic()
    args = parse_args(argv)
    root, full_list = ensure_dataset("imagenet", 5000)
    folder = os.path.join(DATA_DIR, "files")
    os.makedirs(folder, exist_ok=True)
    rec = big_file(root, full_list, records_for(full_list, root, args.size_mb), folder)
    tiny = tiny_files(args.memory_records)
    work = os.path.join(DATA_DIR, "formats")
    clear(work)
    os.makedirs(work)
    env = dict(TOOL_ENV, HF_DATASETS_CACHE=os.path.join(work, "hf-cache"), HF_HUB_OFFLINE="1",
               HF_DATASETS_DISABLE_PROGRESS_BARS="1")
    script = os.path.join(os.path.dirname(args.nomx_python), "recpack")
    recpack = [script] if os.access(script, os.X_OK) else [args.nomx_python, "-m",
                                                           "mxnet_recpack"]
    users, direct_mds = scripts(args.nomx_python)
    readers = {"pure-Python reader": (args.nomx_python, READ_PURE + READ_ONLY)}
    if imports(sys.executable, "import mxnet"):
        readers["MXIndexedRecordIO"] = (sys.executable, READ_MXNET + READ_ONLY)
    runs = Runs(work, env)
    lines = machine(args.nomx_python)
    warm_up(runs, tiny[0], recpack, users, readers)
    memory = {}
    out = os.path.join(work, "out")
    for fmt in FORMATS:
        memory[fmt] = [runs.run(None, convert(recpack, t, out, fmt), [out]) for t in tiny]
        clear(out)
    read_through(rec)
    sizes = {}
    for rep in range(args.repeat):
        got = round_of(runs, rec, recpack, users, check=rep == 0)
        sizes = sizes or got
        for name, (python, code) in readers.items():
            runs.run(("read", name), [python, "-c", code, rec])
    clear(work)
    publish(report(args, runs, rec, users, direct_mds, sizes, memory, lines,
                   time.monotonic() - started), args.out)


if __name__ == "__main__":
    main()
