"""Records of existing files as the writer's items, without decoding them.

:class:`RecordItems` is a dataset whose item ``i`` is a
:class:`~mxnet_recpack.format.header.RecordPayload`: a record of a
:class:`~mxnet_recpack.sources.records.RecordSet` copied byte for byte (header, labels, ``id2``
and image bytes), its header id set to its new key when keys are renumbered and its label
replaced when it is relabelled; or a record made here (InsightFace's header and identity
records). The writer stores such items as they are, so merging, splitting, shuffling and
filtering go through the same atomic, resumable, reported runs as packing images.
"""

import hashlib

import numpy as np

from ..format.header import RecordPayload, with_id, with_label

__all__ = ["RecordItems", "LabelTable"]


class LabelTable:
    """A label per item, or none (keep the stored one), packed in arrays (cheap to pickle)."""

    _SCALARS = (float, int, np.floating, np.integer)

    def __init__(self, labels):
        labels = list(labels)
        if all(label is None or isinstance(label, self._SCALARS) for label in labels):
            # the common case (relabel by a mapping, a filter's kept labels): no vector labels
            present = np.fromiter((label is not None for label in labels), bool, len(labels))
            values = np.fromiter((0.0 if label is None else label for label in labels),
                                 np.float32, len(labels))
            self.values = values[present]
            self.starts = np.concatenate(([0], np.cumsum(present))).astype(np.int64)
            self.vector = np.zeros(len(labels), bool)
            return
        values, starts, vector = [], [0], []
        for label in labels:
            if label is None:
                starts.append(starts[-1])
                vector.append(False)
                continue
            arr = np.atleast_1d(np.asarray(label, dtype=np.float32))
            values.append(arr)
            starts.append(starts[-1] + len(arr))
            vector.append(np.ndim(label) > 0)
        self.values = np.concatenate(values) if values else np.zeros(0, np.float32)
        self.starts = np.asarray(starts, np.int64)
        self.vector = np.asarray(vector, bool)

    def __len__(self):
        return len(self.vector)

    def get(self, i):
        """Item ``i``'s new label (float or float32 vector), or None to keep the stored one."""
        a, b = int(self.starts[i]), int(self.starts[i + 1])
        if a == b:
            return None
        return self.values[a:b].copy() if self.vector[i] else float(self.values[a])

    def digest(self):
        h = hashlib.sha256()
        for arr in (self.values, self.starts, self.vector):
            h.update(np.ascontiguousarray(arr).tobytes())
        return h.hexdigest()


class RecordItems:
    """Records of existing files, as items for :class:`~mxnet_recpack.RecordFileWriter`.

    Parameters
    ----------
    records : RecordSet
        The input records.
    positions : array of int
        The input position of each item, in output order; -1 where ``made`` gives the record.
    keys : array of int, optional
        The output key of each item (default: the input keys).
    set_ids : bool, default False
        Set each record's header id to its new key (when keys are renumbered).
    labels : LabelTable, optional
        New labels (None entries keep the stored label).
    made : dict, optional
        ``{item: RecordPayload}``: records made by the operation (InsightFace layout records).
    edit : callable, optional
        ``edit(payload, key) -> payload``, run in the workers on each copied record (re-encoding
        the image); it may say ``gil_free = True`` when threads can run it in parallel.
    what : str
        Names the operation in fingerprints (a resumed run must be the same operation).
    """

    def __init__(self, records, positions, *, keys=None, set_ids=False, labels=None, made=None,
                 edit=None, what="copy", strict=None):
        self.records = records
        self.positions = np.asarray(positions, dtype=np.int64)
        if keys is None:
            keys = np.where(self.positions >= 0, records.keys[np.maximum(self.positions, 0)], 0)
        self.keys = np.asarray(keys, dtype=np.uint64)
        self.set_ids = set_ids
        self.labels = labels
        self.made = dict(made or {})
        #: Every item must be stored (a layout whose ranges count every image: one skipped
        #: would break them); by default, when records are made (a layout's header records).
        self.strict = bool(self.made) if strict is None else strict
        self.edit = edit
        self.what = what
        #: Copying is reads and memcpy (threads run it in parallel); an edit may not be.
        self.record_item_gil_free = edit is None or getattr(edit, "gil_free", False)
        #: ... and mostly Python holding the GIL: more threads than cores only contend.
        self.record_item_gil_bound = edit is None

    def __len__(self):
        return len(self.positions)

    @property
    def record_keys(self):
        return self.keys

    def record_source(self, i):
        """Where item ``i`` comes from (for failure reports)."""
        p = int(self.positions[i])
        if p < 0:
            return "a record made by %s" % self.what
        path, offset = self.records.where(p)
        return "%s (key %d, byte offset %d)" % (path, self.records.keys[p], offset)

    def record_item(self, i):
        """Item ``i``: the record to store, as a FramedRecord (its stored bytes) or a
        RecordPayload (to be framed)."""
        made = self.made.get(int(i))
        if made is not None:
            return made
        key = int(self.keys[i])
        label = self.labels.get(i) if self.labels is not None else None
        if self.edit is None and (label is None or isinstance(label, float)):
            stored = self.records.stored(int(self.positions[i]), key if self.set_ids else None,
                                         label)  # copied as stored: no re-framing
            if stored is not None:
                return stored
        payload = self.records.payload(int(self.positions[i]))
        if label is not None:
            payload = with_label(payload, label, key if self.set_ids else None)
        elif self.set_ids:
            payload = with_id(payload, key)
        else:
            payload = RecordPayload(payload)
        if self.edit is not None:
            payload = self.edit(payload, key)
        return payload

    __getitem__ = record_item

    def fingerprint(self):
        """What these items are: the input files and the whole plan (a resumed run must match)."""
        h = hashlib.sha256()
        for arr in (self.positions, self.keys):
            h.update(np.ascontiguousarray(arr).tobytes())
        for i in sorted(self.made):
            h.update(b"%d:" % i + bytes(self.made[i]))
        return {"inputs": self.records.input_files(), "items": len(self),
                "plan_sha256": h.hexdigest(), "set_ids": self.set_ids, "what": self.what,
                "labels": self.labels.digest() if self.labels is not None else None,
                "edit": repr(self.edit)}

    def pickle_parts(self):
        return [("the edit %r" % (self.edit,), self.edit)] if self.edit is not None else []
