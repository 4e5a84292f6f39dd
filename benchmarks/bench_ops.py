#!/usr/bin/env python
"""Benchmark the operations on existing record files against copying the same bytes, in one run.

Each operation runs as the ``recpack`` command (start-up included) on the >= 1 GB pass-through
file of ``bench_files.py``, with a warm page cache, and is compared with ``cp`` + ``sync`` of
the bytes it writes (both fsync their output). Also: the route the operations replace (``recpack
extract`` to a folder, then ``recpack im2rec --pass-through``), and peak memory of ``filter`` on
files of 2,500 and 25,000 records (flat: no payloads are held beyond a bounded buffer).
Times are medians of ``--repeat`` runs.
"""

import os
import shutil
import statistics
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from bench import DATA_DIR, machine_info, measure, publish, verdict  # noqa: E402
from bench_files import big_file, big_file_run, settle  # noqa: E402

RECPACK = [sys.executable, "-m", "mxnet_recpack"]


def pair_of(rec):
    return [rec, rec[:-4] + ".idx"]


def remove(*prefixes):
    for prefix in prefixes:
        folder, name = os.path.split(prefix)
        for f in os.listdir(folder):
            if f.startswith(name):
                path = os.path.join(folder, f)
                shutil.rmtree(path) if os.path.isdir(path) else os.unlink(path)


def settle_disk(*prefixes):
    """Remove earlier outputs and let the file system finish with them: on a file system
    mounted with ``discard`` the freed blocks are trimmed after the journal commits, which
    otherwise slows whichever run comes next."""
    remove(*prefixes)
    settle()


def run(cmd, work, repeat, clean, baseline=None):
    """Median wall seconds and the largest peak RSS (MB) of ``cmd`` over ``repeat`` runs (one
    untimed run first: imports compiled, page cache warm); with ``baseline``, its runs
    alternate with ``cmd``'s (the disk of a shared machine drifts) and its median comes too."""
    walls, base, rss = [], [], 0.0
    for rep in range(repeat + 1):
        for which in ([cmd] + ([baseline] if baseline else [])):
            settle_disk(*clean)
            got = measure(which, os.path.join(work, "log.txt"))
            if rep:
                (walls if which is cmd else base).append(got["wall"])
                rss = max(rss, got["rss_mb"]) if which is cmd else rss
    remove(*clean)
    if baseline:
        return statistics.median(walls), statistics.median(base), rss
    return statistics.median(walls), rss


def copy_cmd(sources, dest):
    """``cp`` of ``sources`` (concatenated) to ``dest`` and its .idx, then ``sync`` them."""
    rec = " ".join(sources)
    return ["sh", "-c", "cat %s > %s && cp %s %s && sync %s %s" % (
        rec, dest, sources[0][:-4] + ".idx", dest[:-4] + ".idx", dest, dest[:-4] + ".idx")]


def main(argv=None):
    args, root, full_list, folder, rec = big_file_run(__doc__, argv)
    small = big_file(root, full_list, args.records // 10, folder)
    work = os.path.join(DATA_DIR, "ops")
    os.makedirs(work, exist_ok=True)
    out = os.path.join(work, "out")
    parts = [os.path.join(work, "half.part%03d.rec" % k) for k in range(2)]
    labels = os.path.join(work, "labels.txt")
    with open(labels, "w") as f:
        f.writelines("%d %d\n" % (c, 999 - c) for c in range(1000))
    rows = []
    copy_all = copy_cmd([rec], out + ".rec")
    jobs = [
        ("split --nsplit 2", RECPACK + ["split", "-q", rec, os.path.join(work, "half"),
                                        "--nsplit", "2"], [os.path.join(work, "half")], 0.5),
        ("split --train-ratio 0.9", RECPACK + ["split", "-q", rec, out, "--train-ratio",
                                               "0.9"], [out], 0.5),
        ("filter --drop-labels 0 (drops 10%)", RECPACK + ["filter", "-q", rec, out + ".rec",
                                                           "--drop-labels", "0"], [out], 0.5),
        ("relabel --mapping (every label)", RECPACK + ["relabel", "-q", rec, out + ".rec",
                                                       "--mapping", labels], [out], 0.5),
        ("shuffle --seed 1", RECPACK + ["shuffle", "-q", rec, out + ".rec", "--seed", "1"],
         [out], 0.3),
    ]
    copies = []
    for what, cmd, clean, target in jobs:
        wall, copy, rss = run(cmd, work, args.repeat, clean + [out], copy_all)
        copies.append(copy)
        rows.append((what, wall, copy, "cp + sync of the file (alternating)",
                     copy / wall >= target, ">= %d%% of cp's throughput" % (100 * target), rss))
    # merge: the two halves back into one (the same bytes as the file)
    subprocess_split = RECPACK + ["split", "-q", rec, os.path.join(work, "half"), "--nsplit", "2"]
    measure(subprocess_split, os.path.join(work, "log.txt"))
    wall, copy2, rss = run(RECPACK + ["merge", "-q", out + ".rec"] + parts, work, args.repeat,
                           [out], copy_cmd(parts, out + ".rec"))
    rows.append(("merge of 2 parts", wall, copy2, "cat + sync of the parts (alternating)",
                 copy2 / wall >= 0.5, ">= 50% of cp's throughput", rss))
    # the route it replaces: extract to loose files, pack them again
    ex = os.path.join(work, "extracted")
    route = ["sh", "-c", "%s extract -q %s %s && %s im2rec -q --pass-through %s/big%d %s" % (
        " ".join(RECPACK), rec, ex, " ".join(RECPACK), ex, args.records, ex)]
    wall_route, _ = run(route, work, 1, [ex])
    filt = [r for r in rows if r[0].startswith("filter")][0]
    rows.append(("extract + im2rec --pass-through (the old route)", wall_route, filt[1],
                 "recpack filter (the same records)", None, "reported", None))
    # memory: flat in the number of records
    _, rss_small = run(RECPACK + ["filter", "-q", small, out + ".rec", "--drop-labels", "0"],
                       work, 1, [out])
    rows.append(("filter peak RSS, %d vs %d records (MB)" % (args.records, args.records // 10),
                 filt[6], rss_small, "the same on 1/10 of the records", filt[6] <= 1.5 *
                 rss_small, "flat (<= 1.5x for 10x the records)", None))
    size = os.path.getsize(rec)
    lines = ["- Machine: %s" % machine_info(),
             "- Command: `python benchmarks/bench_ops.py %s`" % " ".join(sys.argv[1:]),
             "- File: %.2f GB, %d records (pass-through JPEGs); warm page cache; cp + sync "
             "copies %.0f-%.0f MB/s in these runs" % (size / 1e9, args.records,
                                                      size / max(copies) / 1e6,
                                                      size / min(copies) / 1e6),
             "", "| Operation | recpack | Baseline | Baseline is | recpack / baseline "
             "throughput | Target | Met | Peak RSS MB |", "|---|---:|---:|---|---:|---|---|---:|"]
    for what, ours, base, base_what, met, target, rss in rows:
        ratio = "%.0f%%" % (100 * base / ours) if "RSS" not in what else "%.2fx" % (ours / base)
        unit = "" if "RSS" in what else " s"
        lines.append("| %s | %.2f%s | %.2f%s | %s | %s | %s | %s | %s |" % (
            what, ours, unit, base, unit, base_what, ratio, target,
            verdict(met),
            "" if rss is None else "%.0f" % rss))
    publish(lines, args.out)


if __name__ == "__main__":
    main()
