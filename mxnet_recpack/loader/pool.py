"""The worker processes of a loader, their queues and the ring they fill.

Batch ``b`` goes to worker ``b % num_workers`` (so the pool always knows who holds what) and
into ring slot ``b % slots``. The pool watches its workers while it waits: one that died ends
the wait at once, one that holds a batch past ``timeout`` seconds ends it too, each with a
:class:`~mxnet_recpack.errors.WorkerError` naming the worker and the batch; an item that
failed ends it with a :class:`~mxnet_recpack.errors.TransformError` naming the record.
"""

import multiprocessing
import queue
import signal
import time

from ..errors import TransformError, WorkerError
from .ring import Ring
from .worker import work

__all__ = ["Pool"]

_POLL = 0.1  # seconds between looks at the workers while waiting


def _exit_text(code):
    if code is not None and code < 0:
        try:
            return "killed by %s" % signal.Signals(-code).name
        except ValueError:
            return "killed by signal %d" % -code
    return "exit status %s" % code


class Pool:
    """``num_workers`` processes reading ``dataset``; ``item``: ``(shape, dtype)`` of the ring's
    batches (None: no ring, every batch travels as a list)."""

    def __init__(self, dataset, num_workers, *, slots, batch_size, item, context, timeout):
        ctx = multiprocessing.get_context(context) if isinstance(context, (str, type(None))) \
            else context
        self.timeout = timeout
        self.item = item
        self.slots = slots
        self.ring = None
        if item is not None:
            nbytes = batch_size * int(item[1].itemsize) * int(_prod(item[0]))
            self.ring = Ring(slots, nbytes)
        self.results = ctx.Queue()
        self.tasks = [ctx.Queue() for _ in range(num_workers)]
        self.held = {}  # (generation, batch) -> (worker, positions, since)
        self.generation = 0
        self.pids = {}
        args = (self.ring.path, slots * self.ring.slot_bytes, self.ring.slot_bytes) \
            if self.ring else (None, 0, 0)
        self.procs = []
        try:
            for w in range(num_workers):
                proc = ctx.Process(target=work, name="recpack-loader-%d" % w, daemon=True,
                                   args=(w, dataset) + args + (item, self.tasks[w],
                                                                self.results))
                proc.start()
                self.procs.append(proc)
            self._wait_ready()
        except BaseException:
            self.close()
            raise
        if self.ring:
            self.ring.unlink()  # every worker has it mapped: no name left behind

    def _wait_ready(self):
        deadline = time.monotonic() + max(self.timeout, 60)
        while len(self.pids) < len(self.procs):
            self._check_alive("starting")
            try:
                message = self.results.get(timeout=_POLL)
            except queue.Empty:
                if time.monotonic() > deadline:
                    raise WorkerError("the loader's workers did not start within %d s"
                                      % max(self.timeout, 60)) from None
                continue
            if message[0] == "ready":
                self.pids[message[1]] = message[2]

    def new_generation(self):
        """Start an epoch: wait out the batches an abandoned epoch still has in flight (they
        write into the ring), then number the new one."""
        deadline = time.monotonic() + self.timeout
        while self.held:
            self._check_alive("finishing an abandoned epoch")
            try:
                message = self.results.get(timeout=_POLL)
            except queue.Empty:
                if time.monotonic() > deadline:
                    raise WorkerError("the loader's workers did not finish the batches of an "
                                      "abandoned epoch within %d s" % self.timeout) from None
                continue
            self.held.pop((message[1], message[2]), None)
        self.generation += 1
        return self.generation

    def submit(self, batch, slot, positions, epoch):
        worker = batch % len(self.procs)
        self.held[(self.generation, batch)] = (worker, positions, time.monotonic())
        self.tasks[worker].put((self.generation, batch, slot, positions, epoch))

    def wait_for(self, batch, arrived):
        """The message of ``batch`` of this generation (others that arrive meanwhile go into
        ``arrived``)."""
        key = (self.generation, batch)
        while key not in arrived:
            self._check_alive("reading")
            try:
                message = self.results.get(timeout=_POLL)
            except queue.Empty:
                self._check_time(key)
                continue
            got = (message[1], message[2])
            self.held.pop(got, None)
            if message[0] == "error" and got[0] == self.generation:
                raise TransformError("the loader's worker %d failed on %s"
                                     % (message[3], message[4]))
            if got[0] == self.generation:
                arrived[got] = message
        return arrived.pop(key)

    def _check_time(self, key):
        worker, positions, since = self.held[key]
        if time.monotonic() - since > self.timeout:
            raise WorkerError(
                "the loader's worker %d (pid %s) has held batch %d (positions %s) for more "
                "than %d s: stuck? (timeout=%d)" % (worker, self.pids.get(worker), key[1],
                                                   _positions(positions), self.timeout,
                                                   self.timeout))

    def _check_alive(self, doing):
        for w, proc in enumerate(self.procs):
            if proc.exitcode is not None:
                held = [(b, p) for (g, b), (worker, p, _) in self.held.items() if worker == w]
                what = "; it held %s" % ", ".join(
                    "batch %d (positions %s)" % (b, _positions(p)) for b, p in held) \
                    if held else ""
                code = proc.exitcode
                why = ("killed by the system (out of memory?) or by a signal" if code < 0 else
                       "its error is printed above; under spawn or forkserver the script "
                       "must make the loader's workers start under if __name__ == "
                       "'__main__': (the workers import the main module)")
                raise WorkerError("the loader's worker %d (pid %s) died while %s (%s%s): %s"
                                  % (w, proc.pid, doing, _exit_text(code), what, why))

    def view(self, slot, count):
        shape, dtype = self.item
        return self.ring.view(slot, (count,) + tuple(shape), dtype)

    def close(self):
        """Stop the workers (asked, then terminated after a second) and free the ring."""
        for q, proc in zip(self.tasks, self.procs):
            if proc.is_alive():
                try:
                    q.put(None)
                except (OSError, ValueError):
                    pass
        deadline = time.monotonic() + 1.0
        for proc in self.procs:
            proc.join(max(0.0, deadline - time.monotonic()))
            if proc.is_alive():
                proc.terminate()
                proc.join(1.0)
        for q in self.tasks + [self.results]:
            q.cancel_join_thread()
            q.close()
        self.procs = []
        if self.ring:
            self.ring.close()


def _prod(shape):
    n = 1
    for s in shape:
        n *= int(s)
    return n


def _positions(positions):
    positions = [int(p) for p in positions]
    return "%s" % positions if len(positions) <= 6 else "%d..%d, %d of them" % (
        min(positions), max(positions), len(positions))
