"""Any dataset as :class:`~mxnet_recpack.formats.seams.Items`: the one place that asks a dataset
(or the dataset behind a framework's lazy wrappers) what it offers: its own keys, its items'
sources, a fingerprint, a faster item getter and whether it holds the GIL, the parts a worker
process receives by pickle. Nothing else in the pipeline probes a dataset."""

from . import adapters

__all__ = ["as_items", "DatasetItems"]


class DatasetItems:
    """What the pipeline knows of ``dataset``: ``key_of(i)`` and ``source_of(i)`` (callables,
    or None when it has no keys or sources of its own), ``fingerprint()``, ``get(i)`` (the
    fastest item getter giving the same stored bytes), ``gil_free`` (``get`` releases the GIL:
    threads run it in parallel), ``gil_bound`` (reading is Python copying bytes: threads are
    capped at one a core), ``bytes_into`` and ``label_of`` (items that are files' bytes stored
    as they are: ``bytes_into(i, buffer, offset)`` reads item ``i``'s bytes into a bytearray
    and ``label_of(i)`` gives its label, so a batch is read straight into one buffer; None
    otherwise), ``nbytes_of`` (``i ->`` the size of those bytes, or None: it sizes batches)
    and ``pickle_parts``."""

    def __init__(self, dataset):
        self.dataset = dataset
        adapter = adapters.for_dataset(dataset)
        base, _ = adapter.unwrap(dataset, 0) if len(dataset) else (dataset, 0)
        self.key_of = _KeyOf(dataset, adapter) if getattr(base, "record_keys", None) is not \
            None else None
        self.source_of = _SourceOf(dataset, adapter) if callable(
            getattr(base, "record_source", None)) else None
        self._base = base
        # Fastest first: a framework's compiled transforms; the dataset's record_item(i) (numpy
        # or bytes, no framework arrays); the plain __getitem__.
        get = adapter.item_getter(dataset) or getattr(dataset, "record_item", None)
        self.gil_free = get is not None and bool(getattr(dataset, "record_item_gil_free", True))
        self.gil_bound = get is not None and bool(getattr(dataset, "record_item_gil_bound",
                                                          False))
        self.get = get if get is not None else dataset.__getitem__
        # Stored bytes read in place: only from the dataset itself (a wrapper would transform).
        plain = adapter.item_getter(dataset) is None and getattr(dataset, "record_item_bytes",
                                                                 False)
        self.bytes_into = dataset.record_bytes_into if plain else None
        self.label_of = dataset.record_label if plain else None
        self.nbytes_of = getattr(dataset, "record_nbytes", None) if plain else None

    def fingerprint(self):
        """The dataset's ``fingerprint()`` (on it or behind its wrappers), or None."""
        for candidate in (self.dataset, self._base):
            fingerprint = getattr(candidate, "fingerprint", None)
            if callable(fingerprint):
                return fingerprint()
        return None

    def pickle_parts(self):
        return adapters.for_dataset(self.dataset).parts_to_pickle(self.dataset)


def as_items(dataset):
    """The :class:`DatasetItems` of ``dataset``."""
    return DatasetItems(dataset)


class _KeyOf:
    """``i -> key`` through the framework's wrappers (picklable: workers receive it)."""

    def __init__(self, dataset, adapter):
        self.dataset, self.adapter = dataset, adapter

    def __call__(self, i):
        base, j = self.adapter.unwrap(self.dataset, i)
        return int(base.record_keys[j])


class _SourceOf(_KeyOf):
    """``i -> the item's source`` (a path) for failure reports."""

    def __call__(self, i):
        base, j = self.adapter.unwrap(self.dataset, i)
        return base.record_source(j)
