#!/usr/bin/env python
"""Is this checkout slower than an earlier one? Both, side by side, in one run.

The baseline commit (``--baseline``, default: the one before the restructuring into layers) is
checked out into a temporary worktree; every tool run is a subprocess with ``PYTHONPATH`` set
to one tree or the other, alternating, ``--repeat`` times, median kept. Throughput is marginal
between a small and a large list (start-up cancels); start-up and import are whole-process
wall times.

Workloads: ``recpack im2rec --resize 256 --num-thread 2`` and ``--pass-through --num-thread 2``
(the imagenet lists of ``bench.py``), the Gluon ``to_recordio`` snippet, start-up on 100 images
(default and pass-through), and ``python -c "import mxnet_recpack"``.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from bench import (DATA_DIR, GLUON_SNIPPET, TOOL_ENV, ensure_dataset, machine_info,  # noqa: E402
                   marginal, measure, publish, remove_outputs, warm_up, write_list)

BASELINE = "d451304"  # the last commit with the flat module layout
WORKLOADS = {
    "resize": (["--resize", "256", "--num-thread", "2"], (500, 5000), False),
    "pass-through": (["--pass-through", "--num-thread", "2"], (1000, 20000), True),
    "gluon": (None, (500, 5000), False),
    "startup-default": ([], (100,), False),
    "startup-pass-through": (["--pass-through"], (100,), False),
}


def command(tree, name, prefix, root):
    flags = WORKLOADS[name][0]
    if flags is None:
        return [sys.executable, "-c", GLUON_SNIPPET, prefix + ".lst", root, prefix + ".rec"]
    return [sys.executable, "-m", "mxnet_recpack", "im2rec", prefix, root] + flags


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--baseline", default=BASELINE, help="the commit to compare with")
    p.add_argument("--head", default=None,
                   help="compare this commit instead of the working tree (checked out too)")
    p.add_argument("--only", default=",".join(WORKLOADS) + ",import",
                   help="comma-separated subset of: %s, import" % ", ".join(WORKLOADS))
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--out", help="also write the Markdown report to this file")
    args = p.parse_args(argv)
    repo = os.path.dirname(HERE)
    only = set(args.only.split(","))
    checkouts = []

    def checkout(rev):
        tree = tempfile.mkdtemp(prefix="recpack-%s-" % rev)
        subprocess.run(["git", "-C", repo, "worktree", "add", "--detach", "-f", tree, rev],
                       check=True, capture_output=True)
        checkouts.append(tree)
        return tree

    trees = {"baseline %s" % args.baseline: checkout(args.baseline),
             ("commit %s" % args.head if args.head else "this checkout"):
             checkout(args.head) if args.head else repo}
    try:
        root, full_list = ensure_dataset("imagenet", 5000)
        warm_up([root])
        for tree in trees.values():  # compile each tree's modules once (bytecode caches)
            subprocess.run([sys.executable, "-m", "compileall", "-q", os.path.join(
                tree, "mxnet_recpack")], check=True, env=TOOL_ENV)
        rows = []
        for name, (_, counts, cycle) in WORKLOADS.items():
            if name not in only:
                continue
            runs = {t: {n: [] for n in counts} for t in trees}
            for _ in range(args.repeat):
                for n in counts:
                    for label, tree in trees.items():
                        folder = os.path.join(DATA_DIR, "versions", name,
                                              label.split()[0], str(n))
                        os.makedirs(folder, exist_ok=True)
                        prefix = os.path.join(folder, "data")
                        write_list(full_list, n, prefix + ".lst", cycle)
                        remove_outputs(prefix)
                        env = dict(TOOL_ENV, PYTHONPATH=tree)
                        # cwd: `python -m`/`-c` put it first on sys.path, before PYTHONPATH
                        r = measure(command(tree, name, prefix, root), prefix + ".log", env,
                                    cwd=tree)
                        r["n"] = n
                        runs[label][n].append(r)
            row = [name]
            for label in trees:
                med = {n: {"n": n, "wall": statistics.median(x["wall"] for x in runs[label][n])}
                       for n in counts}
                row.append(marginal(med[counts[0]], med[counts[1]]) if len(counts) == 2
                           else med[counts[0]]["wall"])
            rows.append((row, len(counts) == 2))
            print(row, file=sys.stderr)
        imports = {t: [] for t in trees}
        for _ in range(10 * args.repeat if "import" in only else 0):
            for label, tree in trees.items():
                r = measure([sys.executable, "-c", "import mxnet_recpack"], os.devnull,
                            dict(TOOL_ENV, PYTHONPATH=tree), cwd=tree)
                imports[label].append(r["wall"])
        if "import" in only:
            rows.append((["import mxnet_recpack"] + [statistics.median(imports[t])
                                                      for t in trees], False))
    finally:
        for tree in checkouts:
            subprocess.run(["git", "-C", repo, "worktree", "remove", "--force", tree],
                           capture_output=True)
            shutil.rmtree(tree, ignore_errors=True)
    labels = list(trees)
    lines = ["- Machine: %s" % machine_info(),
             "- Command: `python benchmarks/bench_versions.py %s`" % " ".join(sys.argv[1:]),
             "- %d repeats per tool and size, alternating, median" % args.repeat, "",
             "| Workload | %s | %s | this / baseline |" % tuple(labels), "|---|---:|---:|---:|"]
    for row, throughput in rows:
        a, b = row[1], row[2]
        if throughput:
            cells = ["%.0f img/s" % a if a else "n/a", "%.0f img/s" % b if b else "n/a",
                     "%.2fx" % (b / a) if a and b else "n/a"]
        else:
            cells = ["%.0f ms" % (a * 1e3), "%.0f ms" % (b * 1e3), "%+.0f ms" % ((b - a) * 1e3)]
        lines.append("| %s | %s |" % (row[0], " | ".join(cells)))
    publish(lines, args.out)


if __name__ == "__main__":
    main()
