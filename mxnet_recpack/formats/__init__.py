"""The formats a run reads and writes besides RecordIO: one folder each, with its codec, its
sink and its items, and one row in :data:`FORMATS` (see :mod:`.sample` for the record every
format holds)."""
