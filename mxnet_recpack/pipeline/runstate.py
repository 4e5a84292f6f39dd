"""What a run is, saved beside its partial output (``NAME.rec.COMMAND.partial.json``), so a
resumed run continues exactly what it started, and refuses, saying what changed, otherwise."""

import hashlib
import json

from ..errors import OptionError

__all__ = ["RunState", "canonical", "run_digest"]


def _plain(value):
    """numpy scalars and arrays as the JSON values they stand for."""
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        return tolist()
    raise TypeError("%r is not JSON data" % (value,))


def canonical(description):
    """A run description as JSON data (tuples become lists, numpy numbers plain numbers), so a
    description read back from its file compares equal to the live one it was saved from."""
    return json.loads(json.dumps(description, sort_keys=True, default=_plain))


def run_digest(description):
    """The sha256 of a run description's canonical JSON: what the checksum sidecar records as
    the run that wrote the file (a ``resume`` of that same, finished run is then a no-op)."""
    if description is None:
        return None
    text = json.dumps(canonical(description), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class RunState:
    """What a run is, saved beside its partial output so ``resume`` can continue it.

    Attributes
    ----------
    initial_records : int
        Records in the output before this run (an append's existing file), 0 for a new file.
    append : bool
        The records go after the end of the existing ``.rec`` (in place).
    target : dict or None
        An append's :func:`target_fingerprint` at its start.
    run : dict or None
        The description and fingerprint of the dataset and options being written.
    key_base : int or None
        The first key of datasets that have no keys of their own.
    resumable : bool
        False once the run wrote several datasets or single records: it cannot be resumed.
    sidecar : bool
        A checksum sidecar is being made (not when appending to a file that has none).
    resumed : bool
        This process continues an interrupted run (not saved).
    """

    _SAVED = ("initial_records", "append", "target", "run", "key_base", "resumable", "sidecar")

    def __init__(self, initial_records=0, append=False, target=None, run=None, key_base=None,
                 resumable=True, sidecar=True, resumed=False):
        self.initial_records = initial_records
        self.append = append
        self.target = target
        self.run = run
        self.key_base = key_base
        self.resumable = resumable
        self.sidecar = sidecar
        self.resumed = resumed

    def to_json(self):
        return json.dumps(dict({k: getattr(self, k) for k in self._SAVED}, version=2),
                          sort_keys=True)

    #: What each saved field must be (a run description read back is checked before use).
    _TYPES = {"initial_records": int, "append": bool, "target": (dict, type(None)),
              "run": (dict, type(None)), "key_base": (int, type(None)), "resumable": bool,
              "sidecar": bool}

    @classmethod
    def from_json(cls, text):
        data = json.loads(text)
        if not isinstance(data, dict) or data.get("version") != 2:
            raise ValueError("not a version-2 run description")
        for name, kind in cls._TYPES.items():
            if name in data and (not isinstance(data[name], kind) or (
                    kind is int and isinstance(data[name], bool))):
                raise ValueError("its %r is %r" % (name, data[name]))
        if data.get("append") and not (isinstance(data.get("target"), dict) and all(
                k in data["target"] for k in ("length", "tail_sha256", "idx_sha256"))):
            raise ValueError("an append's description without its target")
        if data.get("initial_records", 0) < 0:
            raise ValueError("a negative record count")
        return cls(**{k: data[k] for k in cls._SAVED if k in data}, resumed=True)

    def check_same_run(self, description, path):
        """On resume, refuse a run whose description differs from the interrupted one's,
        saying what changed."""
        before, description = self.run, canonical(description)
        if before is None or canonical(before) == description:
            return
        diff = sorted(k for k in set(before) | set(description)
                      if before.get(k) != description.get(k))
        raise OptionError(
            "%s: cannot resume: the interrupted run differs in %s (was %s, now %s). Resume "
            "with the same dataset and options, or start again without resume"
            % (path, ", ".join(diff), {k: before.get(k) for k in diff},
               {k: description.get(k) for k in diff}))
