"""The one job runner behind every front door: a dataset (or one per part) becomes one or more
indexed files, here or as tasks on a Dask cluster, and every run returns a list of
:class:`~mxnet_recpack.pipeline.summary.WriteSummary`.

Part K of ``train.rec`` is ``train.part00K.rec`` + ``train.part00K.idx``. Each part is a complete
indexed file written by its own :class:`~mxnet_recpack.RecordFileWriter`, so a part written alone
is byte-identical to the same part of a full run, and the parts together hold every record once.
"""

import copy
import logging
import multiprocessing
import os
import time

from ..errors import OptionError, RecpackError
from ..format.names import part_path
from ..images.encodings import store_quality
from ..options import D, check_parts, resolve, validate
from ..storage import is_url

__all__ = ["WRITER_OPTIONS", "LOADER_OPTIONS", "split_positions", "WriteJob", "write_parts",
           "run_jobs"]

log = logging.getLogger(__name__)

#: The options of :class:`~mxnet_recpack.RecordFileWriter` and of its ``write_dataset``.
WRITER_OPTIONS = ("encoding", "quality", "overwrite", "max_failures", "append", "resume",
                  "storage_options", "detection_labels")
LOADER_OPTIONS = ("num_workers", "batch_size", "thread_pool", "timeout")


def split_positions(n, nsplit, part):
    """Positions ``[start, end)`` of part ``part`` when ``n`` items are cut into ``nsplit``
    contiguous parts of sizes differing by at most one (for datasets without a list file)."""
    start, end = n * part // nsplit, n * (part + 1) // nsplit
    return list(range(start, end))


class WriteJob:
    """Write one output file: a picklable task, run here or on a Dask worker.

    Parameters
    ----------
    dataset : sequence of (image, label)
    path : str
        The ``.rec`` (local path or URL) to write.
    positions : sequence of int, optional
        The dataset positions to write (default: all).
    writer_options, loader_options : dict
        Keyword arguments of :class:`~mxnet_recpack.RecordFileWriter` and ``write_dataset``.
    run_info : dict, optional
        What makes this run what it is (a resumed run must match it).
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

    def started(self):
        """Whether a run of this very job was begun here: interrupted (its run state is there)
        or finished (the file's checksum sidecar names this run). Local outputs only (None for
        a URL: its writer decides alone)."""
        if is_url(self.path):
            return None
        from .commit import OutputTransaction
        from .plan import plan_dataset
        out = OutputTransaction(self.path)
        if os.path.exists(out.state_path):
            return True
        opts = {"encoding": D.encoding, "quality": D.quality}
        opts.update({k: v for k, v in self.writer_options.items() if k in opts})
        encoding = validate("encoding", opts["encoding"])
        plan = plan_dataset(self.dataset, self.positions, self.run_info, encoding=encoding,
                            quality=store_quality(encoding, validate("quality", opts["quality"])))
        return os.path.exists(self.path) and out.made_by(plan.description, quiet=True)

    def __call__(self, progress=None):
        from .writer import RecordFileWriter
        loader = dict(self.loader_options)
        if loader.get("num_workers") and multiprocessing.current_process().daemon:
            # A daemonic process (a Dask worker) cannot start worker processes: use threads,
            # which run OpenCV in parallel (it releases the GIL).
            loader["thread_pool"] = True
        with RecordFileWriter(self.path, **self.writer_options) as writer:
            return writer.write_dataset(self.dataset, positions=self.positions,
                                        progress=progress, run_info=self.run_info, **loader)


def write_parts(part_dataset, path, *, options, run_info=None):
    """Write a dataset whole or as parts: the front doors' one entry point.

    Parameters
    ----------
    part_dataset : callable
        ``part_dataset(k, nsplit)`` -> ``(dataset, positions or None)`` of part ``k``.
    path : str
        The ``.rec`` (or its parts' base name).
    options : dict
        Writer and loader options, and ``nsplit``, ``part``, ``dask``, ``progress``.

    Returns
    -------
    list of WriteSummary
        One per file written, in part order.
    """
    opts = resolve(options, WRITER_OPTIONS + LOADER_OPTIONS + ("nsplit", "part", "dask",
                                                               "progress"))
    nsplit = opts["nsplit"]
    jobs = []
    for k in check_parts(nsplit, opts["part"]):
        dataset, positions = part_dataset(k, nsplit)
        jobs.append(WriteJob(dataset, path if nsplit == 1 else part_path(path, k),
                             positions=positions,
                             writer_options={n: opts[n] for n in WRITER_OPTIONS},
                             loader_options={n: opts[n] for n in LOADER_OPTIONS},
                             run_info=dict(run_info or {}, nsplit=nsplit, part=k)))
    return run_jobs(jobs, dask=opts["dask"], progress=opts["progress"])


def _resume_as_one(jobs):
    """A resumed command that writes several files resumes as one: once any of its files was
    begun by this very run (interrupted or finished), the ones it had not reached yet are
    written afresh; with none begun, each refuses (there is nothing to resume)."""
    if len(jobs) < 2 or not all(j.writer_options.get("resume") for j in jobs):
        return
    started = [j.started() for j in jobs]
    if any(started):
        for job, begun in zip(jobs, started):
            if begun is False:
                job.writer_options["resume"] = False


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


def _naming_parts(exc, failed):
    """``exc`` with the failed parts added to its message, its type and attributes kept."""
    named = copy.copy(exc)
    named.args = ("%s (failed parts: %s)" % (exc, failed),) + tuple(exc.args[1:])
    return named


def run_jobs(jobs, *, dask=None, progress=None):
    """Run jobs in order here, or concurrently as Dask tasks; return their summaries.

    With Dask, progress is reported as parts complete, and every part runs to its end even
    when another fails; then the first failure is raised (its type and attributes kept),
    naming the parts that failed (the parts that succeeded are complete files at their final
    paths).
    """
    total = sum(len(j) for j in jobs)
    _resume_as_one(jobs)
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
            job.path.rsplit("/", 1)[-1], int(t0 * 1000)), pure=False) for job in jobs]
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
                         results[i].written, results[i].failed)
            done += len(jobs[i])
            if progress is not None:
                progress(done, total)
        if errors:
            first = errors[min(errors)]
            failed = ", ".join(jobs[i].path for i in sorted(errors))
            if isinstance(first, RecpackError):
                raise _naming_parts(first, failed) from first
            raise RecpackError("%d part(s) failed on the cluster: %s; first error: %r"
                               % (len(errors), failed, first)) from first
        return results
    finally:
        if own:
            client.close()
