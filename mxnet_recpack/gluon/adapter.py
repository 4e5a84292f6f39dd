"""What the Gluon layer hands the pipeline: the :class:`GluonAdapter`.

It is registered when ``mxnet_recpack`` is imported and decides by ``isinstance`` against
modules already in ``sys.modules``, so the pipeline can ask about any dataset without importing
mxnet; everything that does need mxnet is imported only once a Gluon object is in hand.
"""

import sys

from ..pipeline.adapters import Adapter

__all__ = ["GluonAdapter"]


def _gluon_classes():
    """``(Dataset, Block)`` of the mxnet in ``sys.modules``, or None if it is not imported."""
    data = sys.modules.get("mxnet.gluon.data")
    block = sys.modules.get("mxnet.gluon.block")
    if data is None or block is None:
        return None
    return data.Dataset, block.Block


class _SetNumpySemantics:
    """Run in each worker process: MXNet's NumPy-shape/array modes as in the parent."""

    def __init__(self, shape, array):
        self.shape, self.array = shape, array

    def __call__(self):
        from mxnet.util import set_np
        set_np(shape=self.shape, array=self.array)


class GluonAdapter(Adapter):
    """Gluon datasets (``Dataset``, its lazy wrappers) and Gluon transforms (``Block``)."""

    name = "Gluon"

    def owns(self, dataset):
        classes = _gluon_classes()
        return classes is not None and isinstance(dataset, classes[0])

    def unwrap(self, dataset, i):
        from .internals import unwrap
        return unwrap(dataset, i)

    def item_getter(self, dataset):
        from . import fastpath
        return fastpath.fast_item_getter(dataset) if fastpath.enabled else None

    def worker_setup(self):
        from mxnet.util import is_np_array, is_np_shape
        shape, array = is_np_shape(), is_np_array()
        return _SetNumpySemantics(shape, array) if (shape or array) else None

    def owns_transform(self, fn):
        classes = _gluon_classes()
        return classes is not None and isinstance(fn, classes[1])

    def transform_source(self, source, fn):
        from .datasets import ImageListDataset
        return ImageListDataset.from_image_list(source).transform_first(fn)

    def parts_to_pickle(self, dataset):
        from .internals import transform_functions, unwrap
        base, _ = unwrap(dataset, 0) if len(dataset) else (dataset, 0)
        parts = [("the dataset %s" % type(base).__name__, base)]
        parts += [("the transform %r" % (fn,), fn) for fn in reversed(
            transform_functions(dataset))]
        return parts + [("the dataset %s" % type(dataset).__name__, dataset)]
