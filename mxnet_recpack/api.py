"""``im2rec(list_file, transforms, dataset_params, output_path)``: im2rec.py as a Python call."""

import logging
import os
import re

from .errors import OptionError
from .images import INTER_METHODS
from .probe import DEFAULT_MAX_PIXELS

__all__ = ["im2rec", "DATASET_PARAMS"]

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
    str
        The path of the ``.rec`` written.

    Examples
    --------
    >>> from mxnet.gluon.data.vision import transforms
    >>> im2rec("train.lst", transforms.Resize(224), {"root": "images", "num_thread": 2},
    ...        "train")
    'train.rec'
    """
    p = _check_params(dataset_params)
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

    from .datasets import ImageListDataset

    ds = ImageListDataset(list_file, root=p["root"], color=p["color"],
                          decode=not p["pass_through"], pack_label=p["pack_label"],
                          allow_outside_root=p["allow_outside_root"],
                          storage_options=p["storage_options"],
                          resize=0 if p["pass_through"] else p["resize"],
                          center_crop=p["center_crop"] and not p["pass_through"],
                          inter_method=p["inter_method"], max_pixels=p["max_pixels"])
    if not p["pack_label"] and len(ds) and ds.entries.max_labels() > 1:
        log.warning("%s has lines with several labels but pack_label is off: only the first "
                    "label of each is stored, as im2rec.py does; pass pack_label=True "
                    "(--pack-label) to keep them all", list_file)
    if transforms is not None:
        ds = ds.transform_first(transforms)
    workers = p["num_thread"] if p["num_thread"] > 1 else 0
    from .writer import RecordFileWriter
    run_info = {k: p[k] for k in ("root", "resize", "center_crop", "color", "inter_method",
                                  "pass_through", "pack_label", "max_pixels")}
    run_info.update(list_file=os.path.abspath(list_file) if "://" not in list_file
                    else list_file, transforms=re.sub(r" at 0x[0-9a-fA-F]+", "", repr(transforms)))
    with RecordFileWriter(rec, encoding=p["encoding"], quality=p["quality"],
                          overwrite=p["overwrite"], max_failures=p["max_failures"],
                          append=p["append"], resume=p["resume"]) as writer:
        writer.write_dataset(ds, num_workers=workers, batch_size=p["batch_size"],
                             progress=p["progress"], run_info=run_info)
    return writer.path
