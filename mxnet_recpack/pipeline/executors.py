"""Executors: run a :class:`~mxnet_recpack.pipeline.encoder.RecordEncoder` over a dataset and
hand its batches back in dataset order, so the output is the same bytes whatever the worker
count.

* ``num_workers=0``: in this thread.
* threads, when every item is made by OpenCV/numpy code that releases the GIL (threads need no
  copying between processes: measurably faster);
* worker processes otherwise, started with the default ``multiprocessing`` start method
  (``fork``, ``spawn`` or ``forkserver``). Under ``spawn``/``forkserver`` the encoder travels
  by pickle, checked before any worker starts. A worker that dies (OOM killer, ``kill -9``)
  fails the run within a second, naming the items it held; no wait is unbounded.
"""

import logging
import multiprocessing
import multiprocessing.connection
import os
import pickle
import threading
import time

from ..errors import RecpackError, WorkerError
from ..options import validate
from . import adapters
from .workers import WorkerState, worker_start

__all__ = ["run_batches", "check_picklable", "copy_threads"]

log = logging.getLogger(__name__)
_POLL_S = 0.2


def copy_threads(requested):
    """Reader threads for items that are mostly Python holding the GIL (files' bytes stored as
    they are, read from local disks): at most one per core beside the writer's thread. More only
    contend for the GIL: measured on 2 cores, 25,000 pass-through files took 1.6-2.0 s with one
    reader thread and 2.5 s with two."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(1, min(requested, cores - 1))


def _batch_maker(encoder):
    """``positions -> [encoder[i] ...]``: the encoder's own ``encode_batch`` when it has one
    (a batch of pass-through files read into one buffer), else item by item."""
    make = getattr(encoder, "encode_batch", None)
    return make if make is not None else (lambda positions: [encoder[i] for i in positions])


def _batches(n, batch_size):
    return [range(s, min(s + batch_size, n)) for s in range(0, n, batch_size)]


def run_batches(encoder, *, num_workers=0, batch_size=32, thread_pool=None, timeout=600):
    """Yield batches of ``(key, framed record | Failure)`` in dataset order.

    ``thread_pool=None`` chooses: threads when every item is made by OpenCV/numpy code,
    processes when dataset or framework code has to run for each item.
    """
    num_workers = validate("num_workers", num_workers)
    batch_size = validate("batch_size", batch_size)
    thread_pool = validate("thread_pool", thread_pool)
    timeout = validate("timeout", timeout)
    if thread_pool is None:
        thread_pool = getattr(encoder, "gil_free", False)
    if len(encoder) == 0:
        return
    batches = _batches(len(encoder), batch_size)
    if num_workers == 0:
        make = _batch_maker(encoder)
        for batch in batches:
            yield make(batch)
    elif thread_pool:
        if getattr(encoder, "gil_bound", False):  # Python copying bytes: one thread a core
            num_workers = copy_threads(num_workers)
        yield from _run_threads(encoder, num_workers, batches, timeout)
    else:
        yield from _run_processes(encoder, num_workers, batches, timeout)


def _run_threads(encoder, num_workers, batches, timeout):
    """Batches from ``num_workers`` plain threads, in order.

    Worker w makes batches w, w + n, w + 2n, ... and may run at most ``2 * n`` batches ahead
    of the consumer, a bound that can never block the batch the consumer waits for. No pool
    machinery: its handler threads cost measurable GIL time per task.
    """
    results = [None] * len(batches)
    ready = [threading.Event() for _ in batches]
    state = {"consumed": 0, "stop": False}
    cond = threading.Condition()
    ahead = 2 * num_workers
    make = _batch_maker(encoder)

    def work(w):
        for b in range(w, len(batches), num_workers):
            with cond:
                while not state["stop"] and b - state["consumed"] >= ahead:
                    cond.wait()
                if state["stop"]:
                    return
            try:
                results[b] = make(batches[b])
            except BaseException as exc:  # noqa: BLE001 - re-raised in the consumer
                results[b] = exc
            ready[b].set()

    threads = [threading.Thread(target=work, args=(w,), name="recpack-worker-%d" % w,
                                daemon=True) for w in range(num_workers)]
    for t in threads:
        t.start()
    stuck = False
    try:
        for b in range(len(batches)):
            if not ready[b].wait(timeout):
                stuck = True
                raise WorkerError("no result for items %s (first: %s) within %s s (timeout): "
                                  "worker thread %d has not returned them, so a transform or a "
                                  "read is stuck; the output is not written"
                                  % (_span(batches[b]), encoder.describe(batches[b][0]),
                                     timeout, b % num_workers))
            result, results[b] = results[b], None
            with cond:
                state["consumed"] = b + 1
                cond.notify_all()
            if isinstance(result, BaseException):
                raise result
            yield result
    finally:
        with cond:
            state["stop"] = True
            cond.notify_all()
        # Each thread ends after the batch it is making (within the timeout: the process must
        # not exit while OpenCV runs in one); a stuck one cannot be stopped: it is left (a
        # daemon thread). A worker waiting for an answer from a URL's server (one that stopped
        # answering) is not waited for at all: a daemon, it ends with the process, so an error
        # or an interruption ends the run now (a daemon thread still in native code, OpenCV,
        # at exit would abort the process: those are waited for).
        from ..storage.remote import waiting_on_storage
        deadline = time.monotonic() + (2 if stuck else timeout)
        for t in threads:
            while t.is_alive() and not waiting_on_storage(t) and time.monotonic() < deadline:
                t.join(0.05)
            if t.is_alive() and not waiting_on_storage(t):
                log.info("%s is still running an item after the run ended", t.name)


def _span(batch):
    return "%d-%d" % (batch[0], batch[-1]) if len(batch) > 1 else str(batch[0])


def check_picklable(encoder, method):
    """Under ``spawn``/``forkserver``, refuse an encoder that cannot travel to the workers,
    naming the part (dataset, transform) that cannot be pickled."""
    try:
        pickle.dumps(encoder, protocol=pickle.HIGHEST_PROTOCOL)
        return
    except Exception as exc:  # noqa: BLE001 - any pickling failure is reported
        reason = "%s: %s" % (type(exc).__name__, exc)
    culprit = None
    for description, part in adapters.for_dataset(encoder.dataset).parts_to_pickle(
            encoder.dataset):
        try:
            pickle.dumps(part, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:  # noqa: BLE001
            culprit = description
            break
    if culprit is None:  # every part of the user's pickles: the rest is ours
        raise RecpackError("internal error: the worker task cannot be pickled (%s); this is a "
                           "bug in recpack, please report it. Meanwhile use num_workers=0 or "
                           "the 'fork' start method" % reason)
    raise RecpackError(
        "worker processes started with the %r start method receive the dataset by pickle, and "
        "%s cannot be pickled (%s). Define datasets and transforms at module level (no lambdas "
        "or local functions), or use num_workers=0, or the 'fork' start method where the "
        "platform has it" % (method, culprit, reason))


def _process_main(encoder, tasks, results, setup):
    """A worker process: run the batches it receives until None; send each result back at
    once (no buffering thread: what was sent before a crash has arrived)."""
    worker_start()
    if setup is not None:
        setup()
    while True:
        task = tasks.recv()
        if task is None:
            return
        b, batch = task
        try:
            # item by item: a batch framed in one buffer (encode_batch) holds views, which
            # cannot travel by pickle
            results.send((b, [encoder[i] for i in batch], None))
        except BaseException as exc:  # noqa: BLE001 - re-raised in the parent
            try:
                results.send((b, None, exc))
            except Exception:  # noqa: BLE001 - an unpicklable exception: send its text
                results.send((b, None, RecpackError("%s: %s" % (type(exc).__name__, exc))))


def _died(proc):
    code = proc.exitcode
    if code is not None and code < 0:
        return "was killed by signal %d%s" % (-code, " (SIGKILL: the OOM killer, or kill -9)"
                                               if code == -9 else "")
    return "exited with status %s" % code


class _Workers:
    """``n`` worker processes, each with a task pipe and a result pipe; batch ``b`` goes to
    worker ``b % n``, so the parent always knows which items a worker holds."""

    def __init__(self, encoder, n):
        ctx = multiprocessing.get_context()
        method = ctx.get_start_method()
        if method != "fork":
            check_picklable(encoder, method)
        setup = adapters.for_dataset(encoder.dataset).worker_setup()
        self.encoder, self.n = encoder, n
        self.tasks, self.results, self.procs = [], [], []
        with WorkerState():
            for w in range(n):
                task_recv, task_send = ctx.Pipe(duplex=False)
                result_recv, result_send = ctx.Pipe(duplex=False)
                p = ctx.Process(target=_process_main, name="recpack-worker-%d" % w,
                                args=(encoder, task_recv, result_send, setup), daemon=True)
                p.start()
                task_recv.close()
                result_send.close()
                self.tasks.append(task_send)
                self.results.append(result_recv)
                self.procs.append(p)
        self.held = [[] for _ in range(n)]  # batches sent to each worker, not yet back

    def send(self, b, batch):
        w = b % self.n
        self.tasks[w].send((b, batch))
        self.held[w].append(b)

    def receive(self, timeout, batches):
        """The results that arrive within ``timeout`` seconds: ``[(b, items), ...]``."""
        ready = multiprocessing.connection.wait(self.results + [p.sentinel for p in self.procs],
                                                timeout)
        got = []
        for w, conn in enumerate(self.results):
            while conn in ready and conn.poll():
                try:
                    b, items, exc = conn.recv()
                except EOFError:
                    break
                self.held[w].remove(b)
                if exc is not None:
                    raise exc
                got.append((b, items))
        for w, p in enumerate(self.procs):
            if p.sentinel in ready and self.held[w]:
                p.join()
                batch = batches[self.held[w][0]]
                raise WorkerError("worker process %d (pid %d) %s while it held items %s "
                                  "(first: %s); the output is not written. If it ran out of "
                                  "memory, use fewer workers or a smaller batch_size"
                                  % (w, p.pid, _died(p), _span(batch),
                                     self.encoder.describe(batch[0])))
        return got

    def stuck(self, b, batch, timeout):
        """The error for batch ``b``, not back within ``timeout`` seconds from a live worker."""
        w = b % self.n
        return WorkerError("no result for items %s (first: %s) within %s s (timeout): worker "
                           "process %d (pid %d) is alive but has not returned them, so a "
                           "transform or a read is stuck; the output is not written"
                           % (_span(batch), self.encoder.describe(batch[0]), timeout, w,
                              self.procs[w].pid))

    def close(self):
        for conn, p in zip(self.tasks, self.procs):
            try:
                if p.is_alive():
                    conn.send(None)
            except (OSError, ValueError):
                pass
        deadline = time.monotonic() + 2
        for p in self.procs:
            p.join(max(0.0, deadline - time.monotonic()))
            if p.is_alive():  # stuck: SIGTERM, then SIGKILL (a wait that always ends)
                p.terminate()
                p.join(2)
                if p.is_alive():
                    p.kill()
                    p.join()
        for conn in self.tasks + self.results:
            conn.close()


def _run_processes(encoder, num_workers, batches, timeout):
    """Batches from ``num_workers`` worker processes, at most ``2 * n`` batches in flight,
    results put back in order. The wait for each batch is bounded by ``timeout`` seconds from
    the moment it is the one expected, whatever other batches arrive meanwhile."""
    workers = _Workers(encoder, num_workers)
    done = {}
    sent = 0
    try:
        for b in range(len(batches)):
            while sent < min(b + 1 + 2 * num_workers, len(batches)):
                workers.send(sent, batches[sent])
                sent += 1
            deadline = time.monotonic() + timeout
            while b not in done:
                left = deadline - time.monotonic()
                done.update(workers.receive(max(0.0, min(_POLL_S, left)), batches))
                if b not in done and time.monotonic() >= deadline:
                    raise workers.stuck(b, batches[b], timeout)
            yield done.pop(b)
    finally:
        workers.close()
