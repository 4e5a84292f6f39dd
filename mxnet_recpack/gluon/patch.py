"""``Dataset.to_recordio``: the method every Gluon Dataset gains once mxnet_recpack is imported.

``import mxnet_recpack`` does not import mxnet (the CLI's paths stay fast, and the package works
without MXNet); the method is attached to ``mxnet.gluon.data.Dataset`` as soon as that class
exists, whichever of the two packages is imported first.
"""

from __future__ import annotations

import importlib.abc
import os
import sys
from typing import Any, Callable

from ..options import D

__all__ = ["to_recordio", "install_hook"]

_TARGET = "mxnet.gluon.data.dataset"


def to_recordio(self, path: str | os.PathLike, *, encoding: str = D.encoding,
                quality: int | None = D.quality, num_workers: int = D.num_workers,
                batch_size: int = D.batch_size, thread_pool: bool | None = D.thread_pool,
                overwrite: bool = D.overwrite, max_failures: int | float | None = D.max_failures,
                progress: Callable[[int, int], None] | None = D.progress,
                timeout: float = D.timeout, append: bool = D.append, resume: bool = D.resume,
                nsplit: int = D.nsplit, part: int | None = D.part, dask: Any = D.dask,
                storage_options: dict | None = D.storage_options,
                detection_labels: bool = D.detection_labels) -> str | list[str]:
    """Write this dataset's ``(image, label)`` items to an indexed RecordIO file.

    Parameters
    ----------
    path : str or os.PathLike
        The ``.rec`` to write (or an ``s3://`` URL); the ``.idx`` goes beside it.
    encoding : {'.jpg', '.png', '.npy'}, default '.jpg'
    quality : int, optional
        JPEG quality (default 95) or PNG compression level (default 9).
    num_workers : int, default 0
        Worker processes (threads when the items are made by OpenCV alone) that read,
        transform and encode items; started with the default ``multiprocessing`` start method.
    batch_size : int, default 32
        Items per worker task.
    nsplit : int, default 1
        Write the dataset as this many parts, ``NAME.part000.rec`` ..., cut by position into
        contiguous ranges; keys are the same as in a single file.
    part : int, optional
        Write only this part; by default every part.
    dask : distributed.Client or str, optional
        Run each part as a task on this Dask cluster (a scheduler address works too); the
        dataset travels to the workers by pickle.
    overwrite, max_failures, append, resume, storage_options, progress, thread_pool, timeout,
    detection_labels :
        See :class:`mxnet_recpack.RecordFileWriter` and its ``write_dataset``.

    Returns
    -------
    str or list of str
        The path of the ``.rec`` written, or of every part written when ``nsplit > 1`` and
        ``part`` is None.

    Examples
    --------
    >>> import mxnet_recpack
    >>> from mxnet.gluon.data.vision import transforms
    >>> ds.transform_first(transforms.Resize(256, keep_ratio=True)).to_recordio("train.rec")
    'train.rec'
    """
    from ..pipeline.jobs import split_positions, write_parts  # when used: import stays cheap

    path = os.fspath(path)
    options = dict(encoding=encoding, quality=quality, overwrite=overwrite,
                   max_failures=max_failures, append=append, resume=resume,
                   storage_options=storage_options, num_workers=num_workers,
                   batch_size=batch_size, thread_pool=thread_pool, timeout=timeout,
                   nsplit=nsplit, part=part, dask=dask, progress=progress,
                   detection_labels=detection_labels)

    def part_dataset(k, n):
        return self, (None if n == 1 else split_positions(len(self), n, k))

    paths = [summary.path for summary in write_parts(part_dataset, path, options=options)]
    return paths[0] if len(paths) == 1 else paths


def _patch(module):
    dataset_cls = getattr(module, "Dataset", None)
    if dataset_cls is not None and getattr(dataset_cls, "to_recordio", None) is not to_recordio:
        dataset_cls.to_recordio = to_recordio


class _PatchingLoader(importlib.abc.Loader):
    def __init__(self, loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._loader.exec_module(module)
        _patch(module)


class _PatchingFinder(importlib.abc.MetaPathFinder):
    """Adds ``to_recordio`` to Gluon's Dataset right after mxnet defines it."""

    def find_spec(self, fullname, path, target=None):
        if fullname != _TARGET:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None and spec.loader is not None:
                spec.loader = _PatchingLoader(spec.loader)
                return spec
        return None


def install_hook():
    """Give ``mxnet.gluon.data.Dataset`` its ``to_recordio`` method (now, or once imported)."""
    module = sys.modules.get(_TARGET)
    if module is not None:
        _patch(module)
        return
    if not any(isinstance(f, _PatchingFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _PatchingFinder())
