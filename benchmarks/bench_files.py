#!/usr/bin/env python
"""Benchmark the operations on record files that exist, each beside the baseline that bounds it,
in one run: append against copying the file (``cp`` + fsync), ``verify --quick`` against reading
it (``cat``), ``verify`` with 2 workers against the decode limit, and the checksum sidecar's
cost against the pack it belongs to.

The big file (>= 1 GB) is a pass-through pack of the ``imagenet`` images of ``bench.py``,
cycled; it is made once and cached in ``benchmarks/_data/files/``. Times are medians of
``--repeat`` runs, in this process (start-up excluded) unless the row says otherwise. Appends
alternate with the copies they are compared with, each after the file system has finished with
the previous run's freed blocks (see :func:`settle`).
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from bench import (DATA_DIR, TOOL_ENV, ensure_dataset, machine_info, publish,  # noqa: E402
                   verdict, write_list)


def drop_caches():
    """Empty the page cache (as root, where the machine allows it): reads then come from the
    disk. Returns False when it cannot."""
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError:
        return False


#: Seconds to let the file system finish with freed blocks (on a file system mounted with
#: ``discard`` they are trimmed after the journal commits, slowing whatever writes next).
SETTLE_S = 4


def settle():
    os.sync()
    time.sleep(SETTLE_S)
    os.sync()


def timed(fn, repeat, cold=False):
    walls = []
    for _ in range(repeat):
        os.sync()
        if cold:
            drop_caches()
        t = time.perf_counter()
        fn()
        walls.append(time.perf_counter() - t)
    return statistics.median(walls)


def big_file(root, full_list, count, folder):
    rec = os.path.join(folder, "big%d.rec" % count)
    if not os.path.exists(rec):
        write_list(full_list, count, rec[:-4] + ".lst", cycle=True)
        subprocess.run([sys.executable, "-m", "mxnet_recpack", "im2rec", "-q", "--pass-through",
                        "--num-thread", "2", rec[:-4], root], check=True, env=TOOL_ENV)
    return rec


def copy_with_fsync(src, dst):
    shutil.copyfile(src, dst)
    with open(dst, "rb+") as f:
        os.fsync(f.fileno())


def append_rows(rec, root, full_list, n, repeat, folder):
    """Appending ``n`` pass-through images to a copy of ``rec``, against copying it."""
    import mxnet_recpack as rp
    work = os.path.join(folder, "work.rec")
    lst = write_list(full_list, n, os.path.join(folder, "more.lst"))
    # keys past the big file's: the list's indices shifted
    with open(lst) as f:
        lines = [line.split("\t") for line in f]
    base = sum(1 for _ in open(rec[:-4] + ".idx"))
    with open(lst, "w") as f:
        f.writelines("\t".join([str(base + int(p[0]))] + p[1:]) for p in lines)
    times, copies, copy_path = [], [], os.path.join(folder, "copy.rec")
    for rep in range(repeat + 1):  # the first, untimed: imports and caches
        for ext in (".rec", ".idx", ".crc"):  # a fresh copy of the big file to append to
            shutil.copyfile(rec[:-4] + ext, work[:-4] + ext)
        settle()
        t = time.perf_counter()
        rp.im2rec(lst, None, {"root": root, "pass_through": True, "append": True}, work[:-4])
        t_append = time.perf_counter() - t
        if os.path.exists(copy_path):  # the copy alternates with the append, on a settled disk
            os.unlink(copy_path)
        settle()
        t = time.perf_counter()
        copy_with_fsync(rec, copy_path)
        if rep:
            times.append(t_append)
            copies.append(time.perf_counter() - t)
    append, copy = statistics.median(times), statistics.median(copies)
    size = os.path.getsize(rec)
    added = os.path.getsize(work) - size
    return [("append %d images (%.1f MB, %.1f%% of the file) to a %.2f GB file"
             % (n, added / 1e6, 100 * added / size, size / 1e9), append, copy,
             "copy the file (cp + fsync)", append / copy <= 0.05, "<= 5% of the copy")]


def verify_rows(rec, repeat, small):
    import mxnet_recpack as rp

    def cat():
        with open(rec, "rb") as f:
            while f.read(1 << 24):
                pass
    cold = drop_caches()
    quick = timed(lambda: rp.verify(rec, quick=True), repeat, cold)
    read = timed(cat, repeat, cold)
    rows = [("verify --quick (frames, headers, CRC32C, image headers) of %.2f GB, %s cache"
             % (os.path.getsize(rec) / 1e9, "cold" if cold else "warm"), quick, read,
             "read the file (cat), same cache", quick <= 1.25 * read if cold else None,
             "at disk speed (<= 1.25x a read from the disk)")]
    import cv2
    import numpy as np
    from mxnet_recpack import RecordFile
    cv2.setNumThreads(1)
    with RecordFile(small) as rf:
        bodies = [np.frombuffer(bytes(rf.read_image(k)[1]), np.uint8) for k in rf.keys]
    start = time.process_time()
    for b in bodies:
        cv2.imdecode(b, cv2.IMREAD_UNCHANGED)
    limit_s = (time.process_time() - start) / os.cpu_count()
    full = timed(lambda: rp.verify(small, num_threads=2), repeat)
    rows.append(("verify --num-thread 2 (decodes %d images)" % len(bodies), full, limit_s,
                 "decode limit: CPU time of cv2.imdecode spread over %d cores"
                 % os.cpu_count(), full <= limit_s / 0.9, ">= 90% of the decode limit"))
    return rows


def checksum_rows(small, repeat):
    """The CRC32C the writer computes per record, against the pack's own CPU time."""
    from mxnet_recpack import RecordFile
    from mxnet_recpack.format.checksums import crc32c
    with RecordFile(small) as rf:
        offsets = sorted(rf._offsets.values()) + [os.path.getsize(small)]
    with open(small, "rb") as f:
        frames = [f.read(b - a) for a, b in zip(offsets, offsets[1:])]
    crc = timed(lambda: [crc32c(fr) for fr in frames], repeat)
    return frames, crc


def big_file_run(doc, argv):
    """The arguments of a benchmark on the big file, and that file (made once): ``(args,
    root, full_list, folder, rec)``."""
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    p.add_argument("--records", type=int, default=25000,
                   help="records of the big file (25000: about 1.1 GB)")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--out", help="also write the Markdown report to this file")
    args = p.parse_args(argv)
    root, full_list = ensure_dataset("imagenet", 5000)
    folder = os.path.join(DATA_DIR, "files")
    os.makedirs(folder, exist_ok=True)
    return args, root, full_list, folder, big_file(root, full_list, args.records, folder)


def main(argv=None):
    args, root, full_list, folder, rec = big_file_run(__doc__, argv)
    small = os.path.join(folder, "resized.rec")
    write_list(full_list, 5000, small[:-4] + ".lst")
    t = time.perf_counter()
    pack_cpu = time.process_time()
    import mxnet_recpack as rp
    rp.im2rec(small[:-4] + ".lst", None, {"root": root, "resize": 256}, small[:-4])
    pack_cpu = time.process_time() - pack_cpu
    pack_wall = time.perf_counter() - t
    rows = append_rows(rec, root, full_list, args.records // 100, args.repeat, folder)
    rows += verify_rows(rec, args.repeat, small)
    frames, crc = checksum_rows(small, args.repeat)
    rows.append(("CRC32C of the %d records of a --resize 256 pack" % len(frames), crc,
                 pack_cpu, "the pack's CPU time (one worker: %.1f s wall)" % pack_wall,
                 crc / pack_cpu <= 0.02, "<= 2% of the pack"))
    lines = ["- Machine: %s" % machine_info(),
             "- Command: `python benchmarks/bench_files.py %s`" % " ".join(sys.argv[1:]),
             "", "| Operation | recpack s | Baseline s | Baseline | Ratio | Target | Met |",
             "|---|---:|---:|---|---:|---|---|"]
    for what, ours, base, base_what, met, target in rows:
        lines.append("| %s | %.3f | %.3f | %s | %.1f%% | %s | %s |" % (
            what, ours, base, base_what, 100 * ours / base, target,
            verdict(met)))
    publish(lines, args.out)


if __name__ == "__main__":
    main()
