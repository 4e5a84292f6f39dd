"""The one option table: every option's name, default, check and help, in one place.

``dataset_params`` (:func:`~mxnet_recpack.im2rec`), the writer, :class:`ImageList`, the loader
options of ``write_dataset``/``to_recordio`` and the ``recpack im2rec`` flags all read it, so a
default or a rule lives here and nowhere else. Checks are explicit and return the value in its
canonical form (``".JPEG"`` -> ``".jpg"``); an invalid value raises
:class:`~mxnet_recpack.errors.OptionError` naming the option, the value and what is valid.

A bottom layer: it imports only ``errors`` and the stdlib-only encodings table and image probe.
"""

import argparse
import math
import numbers
import os
from collections import namedtuple
from types import SimpleNamespace

from .errors import OptionError
from .images.encodings import normalize_encoding
from .images.probe import DEFAULT_MAX_PIXELS

__all__ = ["Option", "OPTIONS", "D", "INTER_METHODS", "validate", "resolve", "check_parts",
           "failure_limit", "is_int"]

#: im2rec / mx.image interpolation codes: 0-4 are OpenCV's, 9 auto, 10 random.
INTER_METHODS = {
    0: "nearest", 1: "bilinear", 2: "bicubic", 3: "area", 4: "lanczos4",
    9: "auto (cubic to enlarge, area to shrink, bilinear otherwise)",
    10: "random among 0-4 (seeded by the record key, so output stays deterministic)",
}

#: ``check(value)`` returns the canonical value or raises ValueError; ``expected`` says what is
#: valid (for messages); ``flag`` is the ``recpack im2rec`` flag (None: Python only), ``cli``
#: its argparse keywords and ``from_cli`` the conversion of the parsed value.
Option = namedtuple("Option", ["name", "default", "check", "expected", "help", "flag", "cli",
                               "from_cli"])


def is_int(value):
    """An int that is not a bool (``True`` is not a worker count)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _int_at_least(low, high=None):
    def check(value):
        if not is_int(value) or value < low or (high is not None and value > high):
            raise ValueError
        return int(value)
    return check


def _one_of(*values):
    def check(value):
        for v in values:
            if value == v and type(value) is type(v):
                return v
        raise ValueError
    return check


def _boolean(value):
    if not isinstance(value, bool):
        raise ValueError
    return value


def _optional(check):
    return lambda value: None if value is None else check(value)


def _resize(value):
    """An int >= 0 (im2rec's shorter edge; 0 keeps the size), or an exact (width, height)."""
    if is_int(value) and value >= 0:
        return int(value)
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(
            is_int(v) and v > 0 for v in value):
        return (int(value[0]), int(value[1]))
    raise ValueError


def _resize_flag(text):
    """``--resize N``; an exact size is refused with the way to get one."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            "%r is not a number of pixels: --resize N sets the shorter edge (as im2rec.py). "
            "For an exact size use Python's resize=(width, height) (mxnet_recpack.im2rec or "
            "rewrite), or --center-crop --resize N for N x N squares" % text) from None


def _reduced_decode(value):
    if value == "auto" and isinstance(value, str):
        return value
    return _boolean(value)


def _encoding(value):
    try:
        return normalize_encoding(value)
    except OptionError:
        raise ValueError from None


def _max_failures(value):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or math.isnan(value) \
            or value < 0:
        raise ValueError
    if math.isinf(value):  # --max-failures inf: no limit
        return None
    if value >= 1:
        if value != int(value):
            raise ValueError
        return int(value)
    return float(value)


def _mapping(value):
    if value is not None and not isinstance(value, dict):
        raise ValueError
    return value


def _path(value):
    try:
        return os.fspath(value)
    except TypeError:
        raise ValueError from None


def _callable(value):
    if value is not None and not callable(value):
        raise ValueError
    return value


def _timeout(value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0:
        raise ValueError
    return value


def _anything(value):
    return value


def _cli_max_failures(value):
    if value is None or value == math.inf:
        return None
    return int(value) if value >= 1 and value == int(value) else value


_INTER = "one of %s" % ", ".join("%d (%s)" % kv for kv in INTER_METHODS.items())


def _opt(name, default, check, expected, help, flag=None, cli=None, from_cli=None):
    return Option(name, default, check, expected, help, flag, cli or {}, from_cli)


def _ratio(value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or math.isnan(value) \
            or not 0.0 <= value <= 1.0:
        raise ValueError
    return float(value)


def _exts(value):
    value = (value,) if isinstance(value, (str, bytes)) else tuple(value)
    if not value or not all(isinstance(e, str) for e in value):
        raise ValueError
    return value


OPTIONS = {o.name: o for o in (
    # -- making lists (make_list, recpack im2rec --list) ---------------------------------------
    _opt("recursive", False, _boolean, "True or False",
         "walk subfolders and give each folder its own label (the mapping is written to "
         "PREFIX.classes.tsv)", "--recursive", {"action": "store_true"}),
    _opt("exts", (".jpeg", ".jpg", ".png"), _exts,
         "a non-empty sequence of extensions such as ('.jpg', '.png')",
         "list of acceptable image extensions", "--exts", {"nargs": "+"}),
    _opt("chunks", 1, _int_at_least(1), "an integer >= 1", "number of chunks", "--chunks",
         {"type": int}),
    _opt("train_ratio", 1.0, _ratio, "a number in [0, 1]", "ratio of images to use for "
         "training", "--train-ratio", {"type": float}),
    _opt("test_ratio", 0.0, _ratio, "a number in [0, 1]", "ratio of images to use for "
         "testing", "--test-ratio", {"type": float}),
    _opt("shuffle", True, _boolean, "True or False",
         "shuffle the list with seed (as im2rec.py); False keeps the folder order",
         "--no-shuffle", {"action": "store_false", "dest": "shuffle", "help":
                          "keep the folder order; default: shuffle the list with --seed"}),
    _opt("seed", 100, _int_at_least(0), "an integer >= 0",
         "seed of the shuffle (100 reproduces im2rec.py)", "--seed", {"type": int}),
    # -- what to read, and how to preprocess it (ImageList, im2rec) ---------------------------
    _opt("root", ".", _path, "a folder or URL prefix",
         "folder (or s3:// prefix) the list's image paths are relative to"),
    _opt("resize", 0, _resize, "an integer >= 0 (the shorter edge) or a (width, height) pair",
         "resize the shorter edge to this many pixels (0: keep the size); from Python also "
         "an exact (width, height), applied after center_crop", "--resize",
         {"type": _resize_flag, "metavar": "N"}),
    _opt("center_crop", False, _boolean, "True or False",
         "crop the centred square of each image (before resizing)", "--center-crop",
         {"action": "store_true"}),
    _opt("color", 1, _one_of(1, 0, -1), "1, 0 or -1",
         "1: color, 0: grayscale, -1: unchanged (keeps alpha)", "--color",
         {"type": int, "choices": [-1, 0, 1]}),
    _opt("inter_method", 1, _one_of(*INTER_METHODS), _INTER,
         "resize interpolation: 0 nearest, 1 bilinear, 2 bicubic, 3 area, 4 Lanczos, "
         "9 auto, 10 random (seeded by key)", "--inter-method",
         {"type": int, "choices": list(INTER_METHODS)}),
    _opt("reduced_decode", "auto", _reduced_decode, "'auto', True or False",
         "decode large JPEGs at 1/2, 1/4 or 1/8 scale in the DCT first, always keeping at "
         "least twice the resize target (so only images 4x the target or more; several times "
         "faster): auto = for inter_method 3 and 9 only, so the default keeps im2rec.py's "
         "exact pixels; on = for every method", "--reduced-decode",
         {"choices": ["auto", "on", "off"]},
         lambda v: {"auto": "auto", "on": True, "off": False}[v]),
    _opt("max_pixels", DEFAULT_MAX_PIXELS, _optional(_int_at_least(1)),
         "a positive integer or None",
         "skip images with more pixels than this (decompression bombs; None or CLI 0: no limit)",
         "--max-pixels", {"type": int, "metavar": "N"}, lambda v: v or None),
    _opt("decode", True, _boolean, "True or False",
         "decode images (False: the files' bytes, as pass_through stores them)"),
    _opt("pass_through", False, _boolean, "True or False",
         "store the image files as they are (no decoding)", "--pass-through",
         {"action": "store_true"}),
    _opt("any_format", False, _boolean, "True or False",
         "with --pass-through, also store files in formats MXNet's decoder cannot read (GIF, "
         "WebP, PNM: ImageRecordIter dies on them), for readers that can, such as DALI; "
         "default: skip and report them", "--any-format", {"action": "store_true"}),
    _opt("pack_label", False, _boolean, "True or False",
         "store every label of multi-label lines (else only the first, as im2rec.py)",
         "--pack-label", {"action": "store_true"}),
    _opt("allow_empty", False, _boolean, "True or False",
         "write a file of 0 records from an empty list (default: an empty list is an error)",
         "--allow-empty", {"action": "store_true"}),
    _opt("allow_outside_root", False, _boolean, "True or False",
         "accept list paths that are absolute or leave ROOT with ../", "--allow-outside-root",
         {"action": "store_true"}),
    _opt("storage_options", None, _mapping, "a dict of fsspec options or None",
         "fsspec options for s3:// paths (endpoint, credentials)"),
    # -- how records are read (RecordDataset, and the loaders built on it) ---------------------
    _opt("exif", None, _optional(_one_of(True, False, "mxnet")),
         "None, True, False or 'mxnet'",
         "a JPEG's EXIF orientation: True applies it (ImageRecordIter, DALI), False ignores "
         "it, 'mxnet' does what mx.image.imdecode does (Gluon's ImageRecordDataset, "
         "InsightFace, GluonCV: ignored in JPEGs that begin with a JFIF segment); None: True, "
         "or 'mxnet' for InsightFace's layout"),
    # -- how records are stored (RecordFileWriter) --------------------------------------------
    _opt("encoding", ".jpg", _encoding, "'.jpg', '.png' or '.npy'",
         "encoding of the stored images ('.npy' stores any array, e.g. float tensors)",
         "--encoding", {"choices": [".jpg", ".png"], "help": "encoding of the stored images "
                        "(.npy, for float arrays, is for the Python API)"}),
    _opt("quality", None, _optional(_int_at_least(0, 100)),
         "None (the format's default) or an integer: 1-100 for .jpg, 0-9 for .png",
         "JPEG quality 1-100 (default 95), or PNG compression level 0-9 (default 9, as "
         "im2rec.py's 95 acts; levels above 9 act as 9)", "--quality",
         {"type": int}),
    _opt("overwrite", True, _boolean, "True or False",
         "replace existing output when the run succeeds; False refuses to",
         "--no-overwrite", {"action": "store_false", "dest": "overwrite", "help":
                            "refuse to replace an existing output; default: replace it once "
                            "the run succeeds (a failed run never changes it)"}),
    _opt("max_failures", None, _max_failures,
         "None or inf (no limit), a count >= 1, or a fraction in [0, 1) of the dataset",
         "stop with an error past this many bad images (a fraction of the list if below 1; "
         "inf: no limit); default: skip and report them all", "--max-failures", {"type": float},
         _cli_max_failures),
    _opt("detection_labels", False, _boolean, "True or False",
         "check every label against ImageDetRecordIter's layout [header_width, object_width, "
         "..., (class, xmin, ymin, xmax, ymax) per object] and skip items that break it",
         "--detection-labels", {"action": "store_true"}),
    _opt("insightface", False, _boolean, "True or False",
         "write InsightFace's face-dataset layout (what arcface_torch's MXFaceDataset reads): "
         "labels are identities, each identity's images together at keys 1..N, one identity "
         "record each, a header record at key 0, and the 'property' file beside the .rec",
         "--insightface", {"action": "store_true"}),
    _opt("keep_empty_identities", False, _boolean, "True or False",
         "InsightFace layout: also write an identity record (an empty range) for each "
         "identity number no image has, so that identity record N+1+j is identity j "
         "(default: only identities that have images, as RecBuilder writes them)",
         "--keep-empty-identities", {"action": "store_true"}),
    _opt("append", False, _boolean, "True or False",
         "add the images to the existing .rec/.idx (their keys must be new)", "--append",
         {"action": "store_true"}),
    _opt("resume", False, _boolean, "True or False",
         "continue an interrupted run from its last whole record", "--resume",
         {"action": "store_true"}),
    # -- who does the work (write_dataset, to_recordio, im2rec) -------------------------------
    _opt("num_workers", 0, _int_at_least(0), "an integer >= 0",
         "worker processes (or threads) that read, transform and encode items; 0: this one"),
    _opt("num_thread", 1, _int_at_least(1), "an integer >= 1",
         "parallel reader/encoder workers; unlike im2rec.py, the output order never depends "
         "on it (im2rec --pass-through from local files uses at most one reader per core "
         "beside the writer: copying bytes holds Python's GIL, so more threads only contend)",
         "--num-thread", {"type": int}),
    _opt("batch_size", 32, _int_at_least(1), "an integer >= 1", "images per worker task",
         "--batch-size", {"type": int}),
    _opt("thread_pool", None, _optional(_boolean), "None (choose), True or False",
         "threads instead of processes (None: threads when items are made by OpenCV alone)"),
    _opt("timeout", 600, _timeout, "a number of seconds > 0",
         "seconds to wait for one batch before giving up"),
    # -- where the work goes (parts, Dask, progress) ------------------------------------------
    _opt("nsplit", 1, _int_at_least(1), "an integer >= 1 (the number of parts)",
         "split into this many parts (a list by byte position, as im2rec.cc): "
         "PREFIX.part000.rec, ...", "--nsplit", {"type": int}),
    _opt("part", None, _optional(_int_at_least(0)), "None or an integer in [0, nsplit)",
         "write only this part (0-based); default: every part", "--part", {"type": int}),
    _opt("dask", None, _anything, "a distributed.Client or a scheduler address",
         "run each part as a task on this Dask cluster (tcp://host:8786)", "--dask",
         {"metavar": "ADDRESS"}),
    _opt("progress", None, _callable, "a callable(done, total) or None",
         "called after every batch"),
)}

#: The defaults, as attributes: ``D.seed == 100``. Signatures use them, so they agree.
D = SimpleNamespace(**{name: o.default for name, o in OPTIONS.items()})


def validate(name, value, label=None):
    """The canonical form of ``value`` for option ``name``; :class:`OptionError` if invalid.

    ``label`` is how the message names the option (default: its name).
    """
    option = OPTIONS[name]
    try:
        return option.check(value)
    except (ValueError, TypeError):
        raise OptionError("%s = %r is not valid; expected %s"
                          % (label or name, value, option.expected)) from None


def resolve(params, names, where=None):
    """Defaults for ``names`` updated with ``params`` (a dict), each value checked.

    ``where`` names the dict in messages (``"dataset_params"`` gives ``dataset_params['x']``).

    Raises
    ------
    OptionError
        For a key that is not among ``names`` (listing the valid ones), or an invalid value.
    """
    params = dict(params or {})
    unknown = sorted(set(params) - set(names))
    if unknown:
        raise OptionError("unknown %s key(s) %s; valid keys: %s"
                          % (where or "option", ", ".join(map(repr, unknown)),
                             ", ".join(sorted(names))))
    out = {}
    for name in names:
        label = "%s[%r]" % (where, name) if where else name
        out[name] = validate(name, params.get(name, OPTIONS[name].default), label)
    if "nsplit" in out and "part" in out:
        check_parts(out["nsplit"], out["part"])
    return out


def check_parts(nsplit, part):
    """The parts to write for ``nsplit``/``part`` (every part when ``part`` is None)."""
    nsplit = validate("nsplit", nsplit)
    part = validate("part", part)
    if part is None:
        return list(range(nsplit))
    if part >= nsplit:
        raise OptionError("part = %r is not valid; expected an integer in [0, nsplit) = "
                          "[0, %d), or None to write every part" % (part, nsplit))
    return [part]


def failure_limit(max_failures, total):
    """How many failures a run of ``total`` items tolerates (None: no limit)."""
    if max_failures is None:
        return None
    if max_failures < 1:
        return int(math.floor(max_failures * total))
    return int(max_failures)
