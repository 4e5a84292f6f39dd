"""Parts: one dataset written as N independent indexed files, here or on a Dask cluster.

Part K of ``train.rec`` is ``train.part00K.rec`` + ``train.part00K.idx``. Each part is a complete
indexed file written by its own :class:`~mxnet_recpack.RecordFileWriter`, so a part written alone
is byte-identical to the same part of a full run, and the parts together hold every record once.
"""

import logging
import multiprocessing
import os
import time

from .errors import OptionError, RecpackError

__all__ = ["part_path", "split_positions", "check_parts", "PartJob", "run_jobs"]

log = logging.getLogger(__name__)


def part_path(path, part):
    """``train.rec`` -> ``train.part003.rec`` (local paths and URLs alike)."""
    path = os.fspath(path)
    root = path[:-4] if path.endswith(".rec") else path
    return "%s.part%03d.rec" % (root, part)


def check_parts(nsplit, part):
    """Validate ``nsplit``/``part``; return the list of parts to write."""
    if isinstance(nsplit, bool) or not isinstance(nsplit, int) or nsplit < 1:
        raise OptionError("nsplit must be an integer >= 1 (the number of parts); got %r"
                          % (nsplit,))
    if part is None:
        return list(range(nsplit))
    if isinstance(part, bool) or not isinstance(part, int) or not 0 <= part < nsplit:
        raise OptionError("part must be an integer in [0, nsplit) = [0, %d), or None to write "
                          "every part; got %r" % (nsplit, part))
    return [part]


def split_positions(n, nsplit, part):
    """Positions ``[start, end)`` of part ``part`` when ``n`` items are cut into ``nsplit``
    contiguous parts of sizes differing by at most one (for datasets without a list file)."""
    start, end = n * part // nsplit, n * (part + 1) // nsplit
    return list(range(start, end))


class PartJob:
    """Write one output file: a picklable task, run here or on a Dask worker.

    Parameters
    ----------
    dataset : gluon.data.Dataset
    path : str
        The ``.rec`` (local path or URL) to write.
    positions : sequence of int, optional
        The dataset positions to write (default: all).
    writer_options : dict
        Keyword arguments of :class:`~mxnet_recpack.RecordFileWriter`.
    loader_options : dict
        ``num_workers``, ``batch_size``, ``thread_pool``, ``timeout`` of ``write_dataset``.
    run_info : dict, optional
    """

    def __init__(self, dataset, path, *, positions=None, writer_options=None,
                 loader_options=None, run_info=None):
        self.dataset = dataset
        self.path = path
        self.positions = positions
        self.writer_options = dict(writer_options or {})
        self.loader_options = dict(loader_options or {})
        self.run_info = run_info

    def __len__(self):
        return len(self.dataset) if self.positions is None else len(self.positions)

    def __call__(self, progress=None):
        from .writer import RecordFileWriter
        loader = dict(self.loader_options)
        if loader.get("num_workers") and multiprocessing.current_process().daemon:
            # A daemonic process (a Dask worker) cannot fork DataLoader workers: use threads,
            # which run OpenCV in parallel (it releases the GIL).
            loader["thread_pool"] = True
        with RecordFileWriter(self.path, **self.writer_options) as writer:
            summary = writer.write_dataset(self.dataset, positions=self.positions,
                                           progress=progress, run_info=self.run_info, **loader)
        return summary.as_dict()


def _client(dask):
    try:
        from distributed import Client
    except ImportError as exc:  # pragma: no cover - the dask extra installs it
        raise ImportError("dask=... needs dask.distributed: pip install "
                          "'mxnet_recpack[dask]'") from exc
    if isinstance(dask, Client):
        return dask, False
    if isinstance(dask, str):
        return Client(dask, timeout="30s"), True
    raise OptionError("dask must be a distributed.Client or a scheduler address such as "
                      "'tcp://127.0.0.1:8786'; got %r" % (dask,))


def _run_job(job):
    """Module-level entry point for Dask (the job and its result travel by pickle)."""
    return job()


def run_jobs(jobs, *, dask=None, progress=None):
    """Run part jobs in order here, or concurrently as Dask tasks; return their summaries.

    With Dask, progress is reported as parts complete, and every part runs to its end even
    when another fails; then the first failure is raised, naming the parts that failed (the
    parts that succeeded are complete files at their final paths).
    """
    total = sum(len(j) for j in jobs)
    if dask is None:
        results, base = [], 0
        for job in jobs:
            def step(done, _total, base=base):
                if progress is not None:
                    progress(base + done, total)
            results.append(job(progress=step))
            base += len(job)
        return results
    client, own = _client(dask)
    try:
        from distributed import as_completed
        t0 = time.monotonic()
        futures = [client.submit(_run_job, job, key="recpack-%s-%d" % (
            os.path.basename(job.path), int(t0 * 1000)), pure=False) for job in jobs]
        index = {f.key: i for i, f in enumerate(futures)}
        results, errors, done = [None] * len(jobs), {}, 0
        for future in as_completed(futures):
            i = index[future.key]
            if future.status == "error":
                errors[i] = future.exception()
                log.error("part %s failed on the cluster: %s", jobs[i].path, errors[i])
            else:
                results[i] = future.result()
                log.info("part %s done on the cluster: %d written, %d skipped", jobs[i].path,
                         results[i]["written"], results[i]["failed"])
            done += len(jobs[i])
            if progress is not None:
                progress(done, total)
        if errors:
            first = errors[min(errors)]
            failed = ", ".join(jobs[i].path for i in sorted(errors))
            if isinstance(first, RecpackError):
                raise type(first)("%s (failed parts: %s)" % (first, failed)) from first
            raise RecpackError("%d part(s) failed on the cluster: %s; first error: %r"
                               % (len(errors), failed, first)) from first
        return results
    finally:
        if own:
            client.close()
