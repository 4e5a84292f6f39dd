"""``im2rec(list_file, transforms, dataset_params, output_path)``: im2rec.py as a Python call."""

import logging
import os
import re

from .errors import OptionError
from .images import INTER_METHODS
from .lists import parse_list
from .parts import PartJob, check_parts, part_path, run_jobs
from .probe import DEFAULT_MAX_PIXELS
from .storage import is_url

__all__ = ["im2rec", "run_im2rec", "DATASET_PARAMS"]

log = logging.getLogger(__name__)

#: Every key ``dataset_params`` accepts, with its default and meaning (im2rec.py's options).
DATASET_PARAMS = {
    "root": (".", "folder (or s3:// prefix) the list's image paths are relative to"),
    "resize": (0, "resize the shorter edge to this many pixels (0: keep the size)"),
    "center_crop": (False, "crop the centred square before resizing"),
    "quality": (95, "JPEG quality 1-100, or PNG compression 0-9"),
    "color": (1, "1 color, 0 gray, -1 unchanged (keeps alpha)"),
    "encoding": (".jpg", "'.jpg' or '.png'"),
    "inter_method": (1, "resize interpolation: 0-4 (OpenCV), 9 auto, 10 random"),
    "reduced_decode": ("auto", "decode big JPEGs at 1/2-1/8 scale before resizing: 'auto' "
                               "(area methods 3, 9 only), True, False"),
    "pass_through": (False, "store the files' bytes as they are, no decoding"),
    "pack_label": (False, "store every label of a multi-label line (else only the first)"),
    "num_thread": (1, "parallel readers/encoders (DataLoader worker processes)"),
    "batch_size": (32, "items per worker task"),
    "max_failures": (None, "stop past this many bad images (count, or fraction if < 1)"),
    "max_pixels": (DEFAULT_MAX_PIXELS, "skip images larger than this (decompression bombs)"),
    "append": (False, "add the list's images to an existing .rec/.idx"),
    "resume": (False, "continue an interrupted run from its last whole record"),
    "allow_outside_root": (False, "accept list paths that leave the root (absolute, ../)"),
    "overwrite": (True, "replace existing output when the run succeeds"),
    "storage_options": (None, "fsspec options for s3:// paths"),
    "nsplit": (1, "split the list into this many parts by position, as im2rec.cc does"),
    "part": (None, "write only this part (0-based); None writes every part"),
    "dask": (None, "a distributed.Client or scheduler address: each part is a task"),
    "progress": (None, "callable(done, total) called after every batch"),
}


def _check_params(params):
    params = dict(params or {})
    unknown = sorted(set(params) - set(DATASET_PARAMS))
    if unknown:
        raise OptionError("unknown dataset_params key(s) %s; valid keys: %s"
                          % (", ".join(map(repr, unknown)), ", ".join(sorted(DATASET_PARAMS))))
    out = {k: v[0] for k, v in DATASET_PARAMS.items()}
    out.update(params)

    def need(cond, key, valid):
        if not cond:
            raise OptionError("dataset_params[%r] = %r is not valid; expected %s"
                              % (key, out[key], valid))

    def is_int(v):
        return isinstance(v, int) and not isinstance(v, bool)

    need(is_int(out["resize"]) and out["resize"] >= 0, "resize", "an integer >= 0")
    need(is_int(out["quality"]) and 0 <= out["quality"] <= 100, "quality",
         "an integer: 1-100 for .jpg, 0-9 for .png")
    need(out["color"] in (1, 0, -1) and is_int(out["color"]), "color", "1, 0 or -1")
    need(out["encoding"] in (".jpg", ".png"), "encoding", "'.jpg' or '.png'")
    need(out["inter_method"] in INTER_METHODS and is_int(out["inter_method"]), "inter_method",
         "one of %s" % ", ".join("%d (%s)" % kv for kv in INTER_METHODS.items()))
    need(out["reduced_decode"] == "auto" or isinstance(out["reduced_decode"], bool),
         "reduced_decode", "'auto', True or False")
    need(is_int(out["num_thread"]) and out["num_thread"] >= 1, "num_thread", "an integer >= 1")
    need(is_int(out["batch_size"]) and out["batch_size"] >= 1, "batch_size", "an integer >= 1")
    need(out["max_pixels"] is None or (is_int(out["max_pixels"]) and out["max_pixels"] > 0),
         "max_pixels", "a positive integer or None")
    for key in ("center_crop", "pass_through", "pack_label", "allow_outside_root", "overwrite",
                "append", "resume"):
        need(isinstance(out[key], bool), key, "True or False")
    return out


def im2rec(list_file, transforms=None, dataset_params=None, output_path=None):
    """Pack the images of an im2rec ``.lst`` file into ``output_path.rec`` + ``.idx``.

    Each image is read, preprocessed as ``im2rec.py`` does (``center_crop``, then ``resize``),
    then passed through the Gluon ``transforms``, encoded and written, in list order, with the
    list's index as its key. Bad images are skipped and listed in ``output_path.failures.jsonl``.

    Parameters
    ----------
    list_file : str
        The ``.lst`` (``index<TAB>label[<TAB>label...]<TAB>path``), local or ``s3://``.
    transforms : callable or None
        A Gluon transform (``transforms.Compose([...])``, a HybridBlock, any callable taking and
        returning an HWC ``NDArray``) applied to each image; ``None`` for none.
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
    paths = [summary["path"] for summary in summaries]
    return paths[0] if len(paths) == 1 else paths


def run_im2rec(list_file, transforms=None, dataset_params=None, output_path=None):
    """:func:`im2rec`, returning one summary dict per file written (``path``, ``written``,
    ``failed``, ``bytes``, ``seconds``, ``report_path``)."""
    p = _check_params(dataset_params)
    parts = check_parts(p["nsplit"], p["part"])
    list_file = os.fspath(list_file)
    if output_path is None:
        output_path = list_file[:-4] if list_file.endswith(".lst") else list_file
    output_path = os.fspath(output_path)
    rec = output_path if output_path.endswith(".rec") else output_path + ".rec"
    if p["pass_through"] and transforms is not None:
        raise OptionError("pass_through stores each file's bytes unchanged, so transforms "
                          "cannot be applied; drop one of them")
    if p["pass_through"] and (p["resize"] or p["center_crop"]):
        log.warning("pass_through: resize/center_crop are ignored (files are stored as they "
                    "are), as in im2rec.py")
    entries = parse_list(list_file, allow_outside_root=p["allow_outside_root"],
                         storage_options=p["storage_options"])
    if not p["pack_label"] and len(entries) and entries.max_labels() > 1:
        log.warning("%s has lines with several labels but pack_label is off: only the first "
                    "label of each is stored, as im2rec.py does; pass pack_label=True "
                    "(--pack-label) to keep them all", list_file)
    run_info = {k: p[k] for k in ("root", "resize", "center_crop", "color", "inter_method",
                                  "reduced_decode", "pass_through", "pack_label", "max_pixels",
                                  "nsplit")}
    run_info.update(list_file=list_file if is_url(list_file) else os.path.abspath(list_file),
                    transforms=re.sub(r" at 0x[0-9a-fA-F]+", "", repr(transforms)))
    writer_options = {k: p[k] for k in ("encoding", "quality", "overwrite", "max_failures",
                                        "append", "resume", "storage_options")}
    loader_options = {"num_workers": p["num_thread"] if p["num_thread"] > 1 else 0,
                      "batch_size": p["batch_size"]}
    jobs = []
    for k in parts:
        subset = entries if p["nsplit"] == 1 else entries.select(
            entries.part_positions(p["nsplit"], k))
        ds = _list_dataset(subset, p, gluon=transforms is not None)
        if transforms is not None:
            ds = ds.transform_first(transforms)
        jobs.append(PartJob(ds, rec if p["nsplit"] == 1 else part_path(rec, k),
                            writer_options=writer_options, loader_options=loader_options,
                            run_info=dict(run_info, part=k)))
    return run_jobs(jobs, dask=p["dask"], progress=p["progress"])


def _list_dataset(entries, p, gluon):
    """The list as a Gluon dataset when transforms need one, else the mxnet-free source."""
    if gluon:
        from .datasets import ImageListDataset as cls
    else:
        from .sources import ImageList as cls
    return cls(entries, root=p["root"], color=p["color"],
               decode=not p["pass_through"], pack_label=p["pack_label"],
               storage_options=p["storage_options"],
               resize=0 if p["pass_through"] else p["resize"],
               center_crop=p["center_crop"] and not p["pass_through"],
               inter_method=p["inter_method"], reduced_decode=p["reduced_decode"],
               max_pixels=p["max_pixels"])
