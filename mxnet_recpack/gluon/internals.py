"""Every read of Gluon's private internals, in one module (MXNet 1.9's attribute names).

Gluon's lazy wrappers keep what the pipeline needs out of sight: ``transform_first`` makes a
``_LazyTransformDataset`` holding ``_data`` and a ``_TransformFirstClosure`` with ``_fn``;
``take``/``shard``/``filter``/``sample`` make ``_SampledDataset``/``_FilteredDataset`` with
``_dataset`` and ``_indices``; transform blocks keep their arguments in ``_size``, ``_keep``,
``_interpolation``, ``_args`` and ``_children``. If a future MXNet renames one of them, only
this module changes (and the fast paths fall back to the plain Gluon path).
"""

from mxnet.gluon.data import dataset as _gdata
from mxnet.gluon.data.vision import transforms as T

__all__ = ["unwrap", "transform_first_chain", "transform_functions", "resize_args",
           "center_crop_args", "compose_children", "T"]

_LAZY = getattr(_gdata, "_LazyTransformDataset", None)
_FIRST = getattr(_gdata, "_TransformFirstClosure", None)
_INDEXED = tuple(c for c in (getattr(_gdata, "_SampledDataset", None),
                             getattr(_gdata, "_FilteredDataset", None)) if c is not None)


def unwrap(dataset, i):
    """``(innermost dataset, index in it)`` of item ``i``: ``transform``/``transform_first``
    keep positions; ``take``/``shard``/``filter``/``sample`` map them through their indices."""
    for _ in range(64):  # wrappers nest shallowly; the bound only guards against cycles
        if _LAZY is not None and type(dataset) is _LAZY:
            dataset = dataset._data
            continue
        if _INDEXED and type(dataset) in _INDEXED:
            i = dataset._indices[i]
            dataset = dataset._dataset
            continue
        break
    return dataset, i


def transform_first_chain(dataset):
    """``(base, [fn1, ..., fn_n])`` for ``base.transform_first(fn1)...transform_first(fn_n)``,
    or None when a wrapper in the chain is anything else."""
    fns = []
    while _LAZY is not None and type(dataset) is _LAZY:
        closure = dataset._fn
        if _FIRST is None or type(closure) is not _FIRST:
            return None
        fns.insert(0, closure._fn)
        dataset = dataset._data
    return dataset, fns


def transform_functions(dataset):
    """The functions of every lazy transform wrapper around ``dataset``, outermost first."""
    fns = []
    while _LAZY is not None and type(dataset) is _LAZY:
        fn = dataset._fn
        fns.append(fn._fn if _FIRST is not None and type(fn) is _FIRST else fn)
        dataset = dataset._data
    return fns


def resize_args(block):
    """``(size, keep_ratio, interpolation)`` of a ``transforms.Resize``."""
    return block._size, bool(block._keep), block._interpolation


def center_crop_args(block):
    """``(size, interpolation)`` of a ``transforms.CenterCrop``."""
    size, interp = block._args
    return size, interp


def compose_children(block):
    """The blocks of a ``transforms.Compose``, in order."""
    return list(block._children.values())
