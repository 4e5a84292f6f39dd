"""Existing ``.rec`` files as the samples another format's sink writes: each record's key (its
``.idx`` key), header fields, labels and image bytes, read without decoding."""

from ...format.header import RecordPayload
from ..sample import sample_from_payload

__all__ = ["RecordSamples"]


class RecordSamples:
    """The records of a :class:`~mxnet_recpack.sources.records.RecordSet` as Samples."""

    record_item_gil_free = True
    record_item_gil_bound = True

    def __init__(self, records):
        self.records = records
        self.record_keys = records.keys

    def __len__(self):
        return len(self.records)

    def sample(self, i):
        return sample_from_payload(int(self.record_keys[i]), self.records.payload(i))

    def header_sample(self, i):
        """The Sample of position ``i`` without its image bytes (its header fields only)."""
        return sample_from_payload(int(self.record_keys[i]), self.records.head_payload(i))

    def record_item(self, i):
        """Item ``i`` as a record to store as it is."""
        return RecordPayload(self.records.payload(i))

    __getitem__ = record_item

    def record_source(self, i):
        path, offset = self.records.where(i)
        return "%s (key %d, byte offset %d)" % (path, int(self.record_keys[i]), offset)

    def input_files(self):
        return list(self.records.paths)

    def fingerprint(self):
        import os
        files = []
        for f in self.records.paths:
            st = os.stat(f) if "://" not in f else None
            files.append([f, st.st_size if st else None, st.st_mtime_ns if st else None])
        return {"format": "recordio", "files": files}

    def pickle_parts(self):
        return [("the record files %s" % ", ".join(self.records.paths), self.records)]
