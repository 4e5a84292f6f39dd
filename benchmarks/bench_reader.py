#!/usr/bin/env python
"""Benchmark the framework-free reader, ``RecordDataset``, against its decode limit and against
MXNet's own readers, on the same files, in one run.

Readers, each a subprocess reading every image of a file once as batches of 224 x 224 centre
crops (alternating, ``--repeat``
times, median; throughput is marginal between a small and a large file, so start-up cancels):

* ``decode-2proc``: two processes that only ``cv2.imdecode`` the records, half each: what two
  cores of this machine give (the limit assumes perfect scaling);
* ``recpack-2proc``: two processes reading ``RecordDataset`` items, half each: the reader alone;
* ``torch-loader-only``: PyTorch's ``DataLoader(num_workers=2)`` over one stored image: what the
  loader itself costs (collate, shared memory, queues);
* ``recpack+torch``: ``RecordDataset`` + ``torch.utils.data.DataLoader(num_workers=2)``, in the
  environment without MXNet (``--nomx-python``, default ``.venv-nomx/bin/python``);
* ``recpack+gluon``: ``RecordDataset`` + Gluon's ``DataLoader(num_workers=2)``;
* ``gluon``: Gluon's ``ImageRecordDataset`` + ``DataLoader(num_workers=2)``;
* ``ImageRecordIter``: ``mx.io.ImageRecordIter(preprocess_threads=2)`` (C++ threads; it also
  crops to ``data_shape`` and converts to float NCHW).

The decode limit is ``cv2.imdecode`` of the same records in this process, one thread: cores /
(CPU seconds per record). Run with the MXNet environment's Python: ``make benchmark-reader``
(it needs both environments).
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from bench import DATA_DIR, ensure_dataset, machine_info, marginal, measure  # noqa: E402

TOOLS = ("decode-2proc", "recpack-2proc", "torch-loader-only", "recpack+torch",
         "recpack+gluon", "gluon", "ImageRecordIter")
BATCH = 32

#: Every reader hands out batches of 224 x 224 centre crops (the shorter edge is 256), stacked
#: by the loader's default collate in the workers: what a training loop receives.
_CROP = """
class Crop:
    def __call__(self, img):
        h, w = img.shape[:2]
        y, x = (h - 224) // 2, (w - 224) // 2
        return img[y:y + 224, x:x + 224]
"""

#: Two processes that only split the file between them: what two cores give here without any
#: loader (the limit assumes they scale perfectly; shared virtual cores do not).
_TWO_PROCESSES = """
import multiprocessing, sys
import cv2, numpy as np
from mxnet_recpack import RecordDataset
ds = RecordDataset(sys.argv[1], transform=%s)

def run(half):
    cv2.setNumThreads(1)
    n = 0
    for i in range(half, len(ds), 2):
        %s
        n += 1
    return n

if __name__ == "__main__":
    with multiprocessing.get_context("fork").Pool(2) as pool:
        print(sum(pool.map(run, [0, 1])))
"""

_STORED = """
import sys, torch
from mxnet_recpack import RecordDataset

class Stored:
    '''The file's first image, cropped, at every position: what the loader costs alone.'''
    def __init__(self, path):
        first = RecordDataset(path)
        self.image, self.n = Crop()(first[0][0]), len(first)
    def __len__(self):
        return self.n
    def __getitem__(self, i):
        return self.image, float(i)

loader = torch.utils.data.DataLoader(Stored(sys.argv[1]), batch_size=%d, num_workers=2)
print(sum(len(images) for images, labels in loader))
"""

_SNIPPETS = {
    "decode-2proc": _TWO_PROCESSES % (
        "None", "cv2.imdecode(np.frombuffer(ds.records.record(i)[2], np.uint8), 1)"),
    "recpack-2proc": _CROP + _TWO_PROCESSES % ("Crop()", "ds[i]"),
    "torch-loader-only": _CROP + _STORED % BATCH,
    "recpack+torch": _CROP + """
import sys, torch
from mxnet_recpack import RecordDataset
loader = torch.utils.data.DataLoader(RecordDataset(sys.argv[1], transform=Crop()),
                                     batch_size=%d, num_workers=2)
print(sum(len(images) for images, labels in loader))
""" % BATCH,
    "recpack+gluon": _CROP + """
import sys
from mxnet.gluon.data import DataLoader
from mxnet_recpack import RecordDataset
loader = DataLoader(RecordDataset(sys.argv[1], transform=Crop()), batch_size=%d, num_workers=2)
print(sum(images.shape[0] for images, labels in loader))
""" % BATCH,
    "gluon": """
import sys
from mxnet.gluon.data import DataLoader
from mxnet.gluon.data.vision import ImageRecordDataset, transforms
dataset = ImageRecordDataset(sys.argv[1]).transform_first(transforms.CenterCrop(224))
loader = DataLoader(dataset, batch_size=%d, num_workers=2)
print(sum(images.shape[0] for images, labels in loader))
""" % BATCH,
    "ImageRecordIter": """
import sys
import mxnet as mx
it = mx.io.ImageRecordIter(path_imgrec=sys.argv[1], path_imgidx=sys.argv[1][:-4] + ".idx",
                           data_shape=(3, 224, 224), batch_size=%d, preprocess_threads=2,
                           round_batch=False)
print(sum(%d - b.pad for b in it))
""" % (BATCH, BATCH),
}


def pack(root, full_list, count, out):
    """``recpack im2rec --resize 256`` of the first ``count`` images (cached)."""
    if os.path.exists(out) and os.path.exists(out[:-4] + ".idx"):
        return out
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(full_list) as f, open(out[:-4] + ".lst", "w") as g:
        g.writelines(line for _, line in zip(range(count), f))
    subprocess.run([sys.executable, "-m", "mxnet_recpack", "im2rec", "-q", "--resize", "256",
                    "--num-thread", "2", out[:-4], root], check=True)
    return out


def decode_limit(rec, repeat):
    """CPU seconds per record of ``cv2.imdecode`` (IMREAD_COLOR) on one thread."""
    import cv2
    import numpy as np
    from mxnet_recpack import RecordFile
    cv2.setNumThreads(1)
    with RecordFile(rec) as rf:
        bodies = [np.frombuffer(bytes(rf.read_image(k)[1]), np.uint8) for k in rf.keys]
    for body in bodies[:10]:
        cv2.imdecode(body, cv2.IMREAD_COLOR)
    passes = []
    for _ in range(repeat):
        start = time.process_time()
        for body in bodies:
            cv2.imdecode(body, cv2.IMREAD_COLOR)
        passes.append((time.process_time() - start) / len(bodies))
    cpu = statistics.median(passes)
    return {"n": len(bodies), "cpu_per_image": cpu, "limit": os.cpu_count() / cpu,
            "passes": passes}


def run(args):
    root, full_list = ensure_dataset("imagenet", args.large)
    folder = os.path.join(DATA_DIR, "reader")
    files = {"small": pack(root, full_list, args.small, os.path.join(folder, "small.rec")),
             "large": pack(root, full_list, args.large, os.path.join(folder, "large.rec"))}
    python = {t: (args.nomx_python if "torch" in t else sys.executable) for t in TOOLS}
    runs = {t: {s: [] for s in files} for t in TOOLS}
    for _ in range(args.repeat):
        for size, rec in files.items():
            for tool in TOOLS:
                log = os.path.join(folder, "%s-%s.log" % (tool, size))
                r = measure([python[tool], "-c", _SNIPPETS[tool], rec], log)
                with open(log) as f:
                    count = int(f.read().split()[-1])
                with open(rec[:-4] + ".idx") as f:
                    r["n"] = sum(1 for _ in f)
                if count < r["n"]:
                    raise RuntimeError("%s read %d of %d records" % (tool, count, r["n"]))
                runs[tool][size].append(r)
                print("  %-16s %-6s n=%-5d %6.2f s (background %.0f%%)"
                      % (tool, size, count, r["wall"], r["background"] * 100), file=sys.stderr)
    result = {"limit": decode_limit(files["large"], args.repeat), "tools": {}}
    for tool in TOOLS:
        med = {s: {"n": runs[tool][s][0]["n"],
                   "wall": statistics.median(x["wall"] for x in runs[tool][s]),
                   "util": statistics.median(x["util"] for x in runs[tool][s]),
                   "rss_mb": statistics.median(x["rss_mb"] for x in runs[tool][s]),
                   "background": max(x["background"] for x in runs[tool][s])} for s in files}
        result["tools"][tool] = {"sizes": med, "marginal": marginal(med["small"], med["large"]),
                                 "runs": runs[tool]}
    return result


def render(result, args):
    limit = result["limit"]
    lines = ["- Machine: %s" % machine_info(),
             "- Python %s; decoding with OpenCV; files: `recpack im2rec --resize 256` of the "
             "first %d / %d `imagenet` images" % (platform.python_version(), args.small,
                                                  args.large),
             "- Command: `%s`" % " ".join(["python", "benchmarks/bench_reader.py"] + sys.argv[1:]),
             "- Decode limit: **%.0f images/s** on %d cores (%.2f ms CPU per record, "
             "`cv2.imdecode`, one thread, median of %d passes)"
             % (limit["limit"], os.cpu_count(), limit["cpu_per_image"] * 1e3, args.repeat),
             "", "| Reader | marginal images/s | % of decode limit | CPU util, large | "
             "peak RSS MB, large | max background |", "|---|---:|---:|---:|---:|---:|"]
    for tool in TOOLS:
        t = result["tools"][tool]
        speed = t["marginal"]
        large = t["sizes"]["large"]
        lines.append("| %s | %s | %s | %.0f%% | %.0f | %.0f%% |" % (
            tool, "%.0f" % speed if speed else "n/a",
            "%.0f%%" % (100 * speed / limit["limit"]) if speed else "n/a", large["util"] * 100,
            large["rss_mb"], large["background"] * 100))
    ours = result["tools"]["recpack+torch"]["marginal"]
    met = ours is not None and ours >= 0.9 * limit["limit"]
    lines += ["", "Target: `RecordDataset` with PyTorch's `DataLoader(num_workers=2)` >= 90%% "
              "of the decode limit: **%s**"
              % ("met" if met else "not met")]
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--small", type=int, default=1000, help="records in the small file")
    p.add_argument("--large", type=int, default=5000, help="records in the large file")
    p.add_argument("--repeat", type=int, default=3, help="runs per reader and file (median)")
    p.add_argument("--nomx-python", default=os.path.join(os.path.dirname(HERE), ".venv-nomx",
                                                         "bin", "python"),
                   help="the Python of the environment with PyTorch (and no MXNet)")
    p.add_argument("--out", help="also write the Markdown report to this file")
    p.add_argument("--json", help="write the raw numbers to this JSON file")
    args = p.parse_args(argv)
    result = run(args)
    report = render(result, args)
    print(report)
    if args.out:
        with open(args.out, "w") as f:
            f.write(report + "\n")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
