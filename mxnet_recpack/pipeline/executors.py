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
import pickle
import queue
import threading
import time

from ..errors import RecpackError, WorkerError
from ..options import validate
from . import adapters
from .workers import WorkerState, worker_start

__all__ = ["run_batches", "check_picklable"]

log = logging.getLogger(__name__)
_POLL_S = 0.2


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
        for batch in batches:
            yield [encoder[i] for i in batch]
    elif thread_pool:
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

    def work(w):
        for b in range(w, len(batches), num_workers):
            with cond:
                while not state["stop"] and b - state["consumed"] >= ahead:
                    cond.wait()
                if state["stop"]:
                    return
            try:
                results[b] = [encoder[i] for i in batches[b]]
            except BaseException as exc:  # noqa: BLE001 - re-raised in the consumer
                results[b] = exc
            ready[b].set()

    threads = [threading.Thread(target=work, args=(w,), name="recpack-worker-%d" % w,
                                daemon=True) for w in range(num_workers)]
    for t in threads:
        t.start()
    try:
        for b in range(len(batches)):
            if not ready[b].wait(timeout):
                raise WorkerError("no result for items %s within %s s (timeout); a transform "
                                  "or a read is stuck" % (_span(batches[b]), timeout))
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
        for t in threads:
            t.join()


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
    culprit = "the dataset %s" % type(encoder.dataset).__name__
    for description, part in adapters.for_dataset(encoder.dataset).parts_to_pickle(
            encoder.dataset):
        try:
            pickle.dumps(part, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:  # noqa: BLE001
            culprit = description
            break
    raise RecpackError(
        "worker processes started with the %r start method receive the dataset by pickle, and "
        "%s cannot be pickled (%s). Define datasets and transforms at module level (no lambdas "
        "or local functions), or use num_workers=0, or the 'fork' start method where the "
        "platform has it" % (method, culprit, reason))


def _process_main(encoder, tasks, results, setup):
    """A worker process: run batches from ``tasks`` until None, send results back."""
    worker_start()
    if setup is not None:
        setup()
    while True:
        task = tasks.get()
        if task is None:
            return
        b, batch = task
        try:
            results.put((b, [encoder[i] for i in batch], None))
        except BaseException as exc:  # noqa: BLE001 - re-raised in the parent
            try:
                results.put((b, None, exc))
            except Exception:  # noqa: BLE001 - an unpicklable exception: send its text
                results.put((b, None, RecpackError("%s: %s" % (type(exc).__name__, exc))))


def _died(proc):
    code = proc.exitcode
    if code is not None and code < 0:
        return "was killed by signal %d%s" % (-code, " (SIGKILL: the OOM killer, or kill -9)"
                                               if code == -9 else "")
    return "exited with status %s" % code


def _run_processes(encoder, num_workers, batches, timeout):
    """Batches from ``num_workers`` worker processes: batch b goes to worker b % n, at most
    ``2 * n`` batches in flight, results put back in order."""
    ctx = multiprocessing.get_context()
    method = ctx.get_start_method()
    if method != "fork":
        check_picklable(encoder, method)
    setup = adapters.for_dataset(encoder.dataset).worker_setup()
    results = ctx.Queue()
    tasks = [ctx.SimpleQueue() for _ in range(num_workers)]
    with WorkerState():
        procs = [ctx.Process(target=_process_main, args=(encoder, tasks[w], results, setup),
                             name="recpack-worker-%d" % w, daemon=True)
                 for w in range(num_workers)]
        for p in procs:
            p.start()
    held = [[] for _ in procs]  # batches sent to each worker and not yet back
    done = {}
    sent = 0

    def send_upto(limit):
        nonlocal sent
        while sent < min(limit, len(batches)):
            w = sent % num_workers
            tasks[w].put((sent, batches[sent]))
            held[w].append(sent)
            sent += 1

    try:
        send_upto(2 * num_workers)
        for b in range(len(batches)):
            waited = 0.0
            while b not in done:
                try:
                    got, items, exc = results.get(timeout=_POLL_S)
                except queue.Empty:
                    waited += _POLL_S
                    _check_workers(procs, held, batches, encoder)
                    if waited >= timeout:
                        raise WorkerError("no result for items %s within %s s (timeout); a "
                                          "transform or a read is stuck"
                                          % (_span(batches[b]), timeout)) from None
                    continue
                held[got % num_workers].remove(got)
                if exc is not None:
                    raise exc
                done[got] = items
            yield done.pop(b)
            send_upto(b + 1 + 2 * num_workers)
    finally:
        for t, p in zip(tasks, procs):
            if p.is_alive():
                try:
                    t.put(None)
                except (OSError, ValueError):
                    pass
        deadline = time.monotonic() + 2
        for p in procs:
            p.join(max(0.0, deadline - time.monotonic()))
            if p.is_alive():
                p.terminate()
                p.join()
        results.close()
        results.join_thread()


def _check_workers(procs, held, batches, encoder):
    """Raise :class:`WorkerError` when a worker process died, naming the items it held."""
    for w, p in enumerate(procs):
        if p.exitcode is None:
            continue
        if not held[w]:
            continue  # finished its share (cannot happen before the last batch) or idle
        batch = batches[held[w][0]]
        where = encoder.describe(batch[0])
        raise WorkerError("worker process %d (pid %d) %s while it held items %s (first: %s); "
                          "the output is not written. If it ran out of memory, use fewer "
                          "workers or a smaller batch_size"
                          % (w, p.pid, _died(p), _span(batch), where))
