"""What makes a resumed run continue exactly what the interrupted one started: the same dataset
and options (their description and fingerprint), the same bytes for the last record it wrote,
and the position to go on from."""

import numpy as np

from ..errors import OptionError
from ..format.checksums import crc32c
from .runstate import canonical

__all__ = ["begin_dataset", "check_same_content", "resume_position"]


def begin_dataset(out, ledger, description, *, resuming, first):
    """Record (or, ``resuming``, check) what this dataset run is; return its key base.

    ``out`` is the :class:`~.commit.OutputTransaction`, ``ledger`` the output's
    :class:`~.keys.KeyLedger`, ``first`` whether this is the writer's first dataset.
    """
    state = out.state
    if resuming and first:
        if state.resumable is False:
            raise OptionError("%s: this run wrote several datasets (or single records), which "
                              "cannot be resumed; start again without resume" % out.path)
        if state.run is not None:
            state.check_same_run(description, out.path)
            return ledger.next_key if state.key_base is None else state.key_base
        if len(ledger) > state.initial_records:  # records, but no description: not ours
            raise OptionError("%s: cannot resume: the interrupted run's description is missing "
                              "from %s; start again without resume" % (out.path,
                                                                         out.state_path))
        # interrupted before its dataset began: this run is the one it was to be
    if not first or len(ledger) > state.initial_records:
        state.resumable = False  # several datasets, or write() calls: no resume
    state.run, state.key_base = canonical(description), ledger.next_key
    out.save_state()
    return ledger.next_key


def check_same_content(out, ledger, encoder, position):
    """Resuming: the last record the interrupted run wrote must come out of the dataset the
    same, byte for byte (else the dataset, its transforms or its files changed)."""
    got = encoder[position]
    stored = out.sink.stored_record(len(ledger) - 1)
    if isinstance(got[1], dict) or got[2] != crc32c(stored):
        raise OptionError(
            "%s: cannot resume: item %d (key %d) does not give the bytes the interrupted run "
            "stored for it, so the dataset, its transforms or its image files changed since "
            "(or a transform is random). Start again without resume"
            % (out.path, position, got[0]))


def resume_position(out, ledger, report, keys, order):
    """How many of ``order``'s items the interrupted run finished (up to its last record);
    ``report`` keeps the failure lines of the items before it."""
    start = 0
    if len(ledger) > out.state.initial_records:
        last_key = ledger.last
        hits = np.flatnonzero(keys == np.uint64(last_key))
        if not len(hits):
            raise OptionError("%s: cannot resume: key %d of the partial output is not in this "
                              "dataset" % (out.path, last_key))
        start = int(hits[0]) + 1
    # Records are the durable truth: items after the last whole record are done again (a
    # failure report line is flushed before any later record is written, so every failure
    # before that record is in the report).
    report.keep_earlier(int(order[start]) if start < len(order) else float("inf"))
    return start
