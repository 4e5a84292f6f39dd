"""Packing a list of images: ``im2rec(list_file, transforms, dataset_params, output_path)``,
im2rec.py as a Python call."""

from __future__ import annotations

import logging
import os
import re
from typing import Callable

from .errors import ListFormatError, OptionError
from .format.names import rec_path_for, strip_suffix
from .options import OPTIONS, resolve
from .pipeline import adapters
from .pipeline.executors import copy_threads
from .pipeline.jobs import write_parts
from .pipeline.summary import WriteSummary
from .sources.image_list import ImageList
from .sources.lists import parse_list
from .sources.transformed import TransformedImages
from .sources.insightface import FaceLayoutDataset, face_classes, identity_labels
from .storage import is_url

__all__ = ["im2rec", "run_im2rec", "write_property", "DATASET_PARAMS", "IM2REC_OPTIONS"]

log = logging.getLogger(__name__)

#: The keys ``dataset_params`` accepts: im2rec.py's options and this package's own.
IM2REC_OPTIONS = ("root", "resize", "center_crop", "quality", "color", "encoding",
                  "inter_method", "reduced_decode", "pass_through", "pack_label", "num_thread",
                  "batch_size", "max_failures", "max_pixels", "any_format", "append", "resume",
                  "allow_outside_root", "allow_empty", "overwrite", "storage_options", "nsplit",
                  "part", "dask", "progress", "detection_labels", "insightface",
                  "keep_empty_identities")

#: Every key ``dataset_params`` accepts, with its default and meaning (from the option table).
DATASET_PARAMS = {name: (OPTIONS[name].default, OPTIONS[name].help) for name in IM2REC_OPTIONS}

_IMAGE_LIST_OPTIONS = ("root", "color", "pack_label", "storage_options", "resize",
                       "center_crop", "inter_method", "reduced_decode", "max_pixels",
                       "any_format")
_RUN_INFO = ("root", "resize", "center_crop", "color", "inter_method", "reduced_decode",
             "pass_through", "pack_label", "max_pixels", "any_format", "insightface",
             "keep_empty_identities")


def im2rec(list_file: str | os.PathLike, transforms: Callable | None = None,
           dataset_params: dict | None = None,
           output_path: str | os.PathLike | None = None) -> str | list[str]:
    """Pack the images of an im2rec ``.lst`` file into ``output_path.rec`` + ``.idx``.

    Each image is read, preprocessed as ``im2rec.py`` does (``center_crop``, then ``resize``),
    then passed through ``transforms``, encoded and written, in list order, with the list's
    index as its key. Bad images are skipped and listed in ``output_path.failures.jsonl``.

    Parameters
    ----------
    list_file : str
        The ``.lst`` (``index<TAB>label[<TAB>label...]<TAB>path``), local or ``s3://``.
    transforms : callable or None
        Applied to each image after im2rec's preprocessing. A Gluon transform (a ``Block``:
        ``transforms.Compose([...])``, a HybridBlock) receives an HWC ``NDArray`` (MXNet
        needed); any other callable receives a numpy H x W x C RGB array (no MXNet). Either
        returns the image to store (float tensors need ``encoding='.npy'``).
    dataset_params : dict, optional
        im2rec.py's options; see :data:`DATASET_PARAMS` (unknown keys raise
        :class:`~mxnet_recpack.errors.OptionError` listing the valid ones).
    output_path : str, optional
        Output prefix: writes ``output_path + '.rec'`` and ``.idx``. Default: the list's path
        without ``.lst``.

    Returns
    -------
    str or list of str
        The path (or URL) of the ``.rec`` written; with ``nsplit > 1`` and no ``part``, the
        list of every part's path (``output_path.part000.rec``, ...).

    Examples
    --------
    >>> from mxnet.gluon.data.vision import transforms
    >>> im2rec("train.lst", transforms.Resize(224), {"root": "images", "num_thread": 2},
    ...        "train")
    'train.rec'
    """
    summaries = run_im2rec(list_file, transforms, dataset_params, output_path)
    paths = [summary.path for summary in summaries]
    return paths[0] if len(paths) == 1 else paths


def run_im2rec(list_file: str | os.PathLike, transforms: Callable | None = None,
               dataset_params: dict | None = None,
               output_path: str | os.PathLike | None = None) -> list[WriteSummary]:
    """:func:`im2rec`, returning one :class:`~mxnet_recpack.WriteSummary` per file written."""
    p = resolve(dataset_params, IM2REC_OPTIONS, "dataset_params")
    list_file = os.fspath(list_file)
    rec = rec_path_for(strip_suffix(list_file, ".lst") if output_path is None
                       else os.fspath(output_path))
    if p["pass_through"] and transforms is not None:
        raise OptionError("pass_through stores each file's bytes unchanged, so transforms "
                          "cannot be applied; drop one of them")
    if transforms is not None and not callable(transforms):
        raise OptionError("transforms must be callable (a Gluon transform or a function of a "
                          "numpy image), or None; got %r" % (transforms,))
    if p["pass_through"] and (p["resize"] or p["center_crop"]):
        log.warning("pass_through: resize/center_crop are ignored (files are stored as they "
                    "are), as in im2rec.py")
    entries = parse_list(list_file, allow_outside_root=p["allow_outside_root"],
                         storage_options=p["storage_options"])
    if not len(entries) and not p["allow_empty"]:
        raise ListFormatError(
            "%s has no images listed: nothing to pack. Make a list of a folder's images with "
            "`recpack im2rec --list --recursive PREFIX ROOT` (--recursive: the images in its "
            "subfolders, one label per subfolder); to write a file of 0 records on purpose, "
            "pass --allow-empty (allow_empty=True)" % list_file)
    if not p["pack_label"] and len(entries) and entries.max_labels() > 1:
        log.warning("%s has lines with several labels but pack_label is off: only the first "
                    "label of each is stored, as im2rec.py does; pass pack_label=True "
                    "(--pack-label) to keep them all", list_file)
    image_options = {k: p[k] for k in _IMAGE_LIST_OPTIONS}
    if p["pass_through"]:
        image_options.update(resize=0, center_crop=False)

    def part_dataset(k, nsplit):
        subset = entries if nsplit == 1 else entries.select(entries.part_positions(nsplit, k))
        source = ImageList(subset, decode=not p["pass_through"], **image_options)
        dataset = with_transforms(source, transforms)
        if p["insightface"]:
            dataset = FaceLayoutDataset(dataset, identity_labels(
                [subset.labels(i)[0] for i in range(len(subset))], "list label"),
                keep_empty=p["keep_empty_identities"])
        return dataset, None

    # What makes the run: the list's bytes (the dataset's fingerprint), the options, the image
    # root as a full path (however it was spelled), never where the list file lies (a folder
    # moved after an interruption still resumes).
    run_info = {k: p[k] for k in _RUN_INFO}
    run_info.update(root=p["root"] if is_url(p["root"]) else os.path.abspath(p["root"]),
                    transforms=re.sub(r" at 0x[0-9a-fA-F]+", "", repr(transforms)))
    options = {k: p[k] for k in ("encoding", "quality", "overwrite", "max_failures", "append",
                                 "resume", "storage_options", "batch_size", "nsplit", "part",
                                 "dask", "progress", "detection_labels")}
    options["num_workers"] = p["num_thread"] if p["num_thread"] > 1 else 0
    if p["pass_through"] and options["num_workers"] > 1 and not is_url(p["root"]):
        options["num_workers"] = copy_threads(options["num_workers"])  # GIL-bound copies
    if not p["insightface"]:
        return write_parts(part_dataset, rec, options=options, run_info=run_info)
    if p["nsplit"] > 1 or p["append"]:
        raise OptionError("insightface=True writes one whole face dataset (its header record "
                          "counts every image): it cannot be split into parts or appended to")
    options["max_failures"] = 0  # a skipped image would leave its identity's range wrong
    summaries = write_parts(part_dataset, rec, options=options, run_info=run_info)
    write_property(rec, face_classes(identity_labels(
        [entries.labels(i)[0] for i in range(len(entries))], "list label")),
        p["storage_options"])
    return summaries


def write_property(rec, classes, storage_options=None):
    """Write InsightFace's ``property`` file (``num_classes,H,W``) beside a face ``.rec``: the
    size every image has (from the image headers), or no file when sizes differ (a warning
    says so). Returns its path, or None."""
    from .sources.face_property import write_file_property
    return write_file_property(rec, classes, storage_options=storage_options)


def with_transforms(source, transforms):
    """``source`` with ``transforms`` applied to every image: a framework's transform through
    its adapter (a Gluon Block gets NDArrays), any other callable on numpy RGB images."""
    if transforms is None:
        return source
    adapter = adapters.for_transform(transforms)
    if adapter is not None:
        return adapter.transform_source(source, transforms)
    return TransformedImages(source, transforms)
