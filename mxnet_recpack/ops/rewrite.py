"""``rewrite``: a new file of the same records with their images re-encoded (im2rec's image
options, or any transform), in parallel like ``im2rec``; keys, labels and ``id2`` kept, except
that detection boxes follow a crop (or the run is refused). See :mod:`.edit`."""

from __future__ import annotations

import os
from typing import Callable

from ..errors import BadImageError, ImageEncodeError, OptionError
from ..format.header import (crop_detection_label, looks_like_detection_label, unpack_record,
                             with_data, with_label)
from ..format.names import part_path
from ..images.codec import BGR, ImageEncoder
from ..images.encodings import ENCODINGS, store_quality
from ..images.probe import check_image_bytes
from ..images.transform import Preprocess, center_crop_window
from ..options import D, check_parts, resolve, validate
from ..pipeline import adapters
from ..pipeline.jobs import split_positions
from ..sources.existing import RecordItems
from ..sources.face_property import write_file_property
from .edit import EDIT_OPTIONS, open_inputs, run_edit, single_layout

__all__ = ["rewrite", "Reencode", "REWRITE_OPTIONS"]

#: The image options ``rewrite`` takes (im2rec's, from the option table).
REWRITE_OPTIONS = ("resize", "center_crop", "color", "inter_method", "reduced_decode",
                   "max_pixels", "encoding", "quality")


class Reencode:
    """``edit(payload, key)``: the record with its image decoded, preprocessed as im2rec does
    (``center_crop``, then ``resize``), passed through ``transform`` (a callable on a numpy
    H x W x C RGB image) and encoded again. Label-only records are kept as they are. With
    ``boxes``, a detection label follows the crop."""

    def __init__(self, options, transform=None, boxes=False):
        self.options = dict(options)
        self.transform = transform
        self.boxes = boxes and options["center_crop"]
        self.gil_free = transform is None  # OpenCV alone: threads run it in parallel
        self._make()

    def _make(self):
        o = self.options
        self._preprocess = Preprocess(color=o["color"], resize=o["resize"],
                                      center_crop=o["center_crop"],
                                      inter_method=o["inter_method"],
                                      reduced_decode=o["reduced_decode"],
                                      max_pixels=o["max_pixels"])
        self._encode = ImageEncoder(o["encoding"], o["quality"])

    def __getstate__(self):
        return {"options": self.options, "transform": self.transform, "boxes": self.boxes,
                "gil_free": self.gil_free}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._make()

    def __repr__(self):
        return "Reencode(%s, transform=%s, boxes=%s)" % (
            sorted(self.options.items()), getattr(self.transform, "__qualname__",
                                                  type(self.transform).__name__), self.boxes)

    def __call__(self, payload, key):
        header, data = unpack_record(payload)
        if not len(data):
            return payload
        source = "record key %d" % key
        try:
            info = check_image_bytes(data, max_pixels=self.options["max_pixels"])
        except BadImageError as exc:
            raise BadImageError("%s: %s" % (exc, source)) from None
        image, before = self._preprocess.run(data, info, key, source)
        if self.transform is not None:
            image = self.transform(image[:, :, None] if image.ndim == 2 else BGR.to_rgb(image))
            if isinstance(image, (bytes, bytearray, memoryview)):
                image = self._checked_bytes(image, source)
        out = with_data(payload, self._encode(image))
        if self.boxes:
            label = crop_detection_label(header.label, center_crop_window(*before))
            out = with_label(out, label)
        return out


    def _checked_bytes(self, data, source):
        """Bytes a transform returned, stored as they are only when they are an image MXNet's
        decoder reads (complete, within ``max_pixels``), as pass-through checks files."""
        data = bytes(data)
        try:
            info = check_image_bytes(data, max_pixels=self.options["max_pixels"],
                                     require_known=True)
            if not ENCODINGS[info.format].mxnet_decodes:
                raise BadImageError("a %s image, which MXNet's decoder cannot read"
                                    % info.format.upper())
        except BadImageError as exc:
            raise ImageEncodeError(
                "%s: the transform returned %d bytes that cannot be stored as the image (%s). "
                "Return a numpy H x W x C RGB image (encoded with encoding=%r), or the bytes of "
                "a whole JPEG or PNG" % (source, len(data), exc, self.options["encoding"])) \
                from None
        return data


def _check_labels(records, positions, geometry, detection_labels):
    """Refuse a crop or transform of images whose labels look like detection boxes, unless
    told what they are (boxes follow a crop; a transform's geometry is unknown)."""
    first = next((int(p) for p in positions if records.has_image[p]), None)
    if first is None or not geometry:
        return
    looks = looks_like_detection_label(records.header(first).label)
    if detection_labels is True and geometry == "transform":
        raise OptionError("a transform may move the image in ways detection boxes cannot be "
                          "made to follow; rewrite detection records with resize/center_crop "
                          "(the boxes follow them), or pass detection_labels=False to keep "
                          "the labels as they are")
    if looks and detection_labels is None:
        raise OptionError("the labels look like ImageDetRecordIter's boxes (key %d: %s), and "
                          "this rewrite %s: pass detection_labels=True (--detection-labels) "
                          "to move the boxes with the crop, or detection_labels=False "
                          "(--keep-labels) if they are not boxes"
                          % (records.keys[first], records.header(first).label,
                             "crops the images" if geometry == "crop" else "transforms them"))


def rewrite(input, output: str | os.PathLike, transform: Callable | None = None, *,
            resize=D.resize, center_crop: bool = D.center_crop, color: int = D.color,
            inter_method: int = D.inter_method, reduced_decode=D.reduced_decode,
            max_pixels=D.max_pixels, encoding: str = D.encoding, quality: int | None = D.quality,
            detection_labels: bool | None = None, nsplit: int = D.nsplit, part=D.part,
            **options):
    """Re-encode the images of ``input`` into ``output``: decoded, ``center_crop`` then
    ``resize`` as im2rec does, passed through ``transform`` (a callable on numpy RGB images),
    encoded with ``encoding``/``quality``. Keys, labels, ``id2`` and label-only records are
    kept. Items run in ``num_workers`` workers (threads for OpenCV alone, processes with a
    Python transform); the output does not depend on their number.

    ``detection_labels``: None (default) refuses a crop or transform of images whose labels
    look like detection boxes; True moves boxes with ``center_crop`` (objects cropped out
    are dropped; resizing leaves normalized boxes as they are); False keeps labels as they
    are. ``nsplit``/``part``: write parts (``OUTPUT.part000.rec``...). An InsightFace-layout
    input keeps its records and gets a new ``property`` file (the new image size). Returns
    the list of summaries.
    """
    image_options = {name: validate(name, value) for name, value in (
        ("resize", resize), ("center_crop", center_crop), ("color", color),
        ("inter_method", inter_method), ("reduced_decode", reduced_decode),
        ("max_pixels", max_pixels), ("encoding", encoding), ("quality", quality))}
    image_options["quality"] = store_quality(image_options["encoding"], image_options["quality"])
    if transform is not None and not callable(transform):
        raise OptionError("transform must be a callable on numpy RGB images, got %r"
                          % (transform,))
    if transform is not None and adapters.for_transform(transform) is not None:
        raise OptionError("rewrite applies plain callables on numpy RGB images; wrap a Gluon "
                          "transform t as lambda img: t(mx.nd.array(img)).asnumpy()")
    if detection_labels is not None:
        detection_labels = validate("detection_labels", detection_labels)
    opts = resolve(options, EDIT_OPTIONS)  # every option checked before an input is opened
    nsplit = validate("nsplit", nsplit)
    parts = check_parts(nsplit, part)
    output = os.fspath(output)
    outputs = {k: output if nsplit == 1 else part_path(output, k) for k in parts}
    records = open_inputs(input, opts["storage_options"], outputs.values())
    positions = list(range(len(records)))
    geometry = "transform" if transform is not None else (
        "crop" if image_options["center_crop"] else None)
    _check_labels(records, positions, geometry, detection_labels)
    edit = Reencode(image_options, transform, boxes=bool(detection_labels))
    jobs = []
    # An InsightFace file keeps its keys, so its layout holds if every image is stored, whole.
    layout = single_layout(records, "rewrite") is not None
    if layout and nsplit > 1:
        raise OptionError("%s is in InsightFace's layout (its header and identity records "
                          "count every image): rewrite it whole, then split it with `recpack "
                          "split`, which makes each part's layout" % ", ".join(records.paths))
    for k, out in outputs.items():
        mine = split_positions(len(records), nsplit, k)
        jobs.append((out, RecordItems(records, mine, edit=edit, what="rewrite",
                                      strict=layout)))
    summaries = run_edit(jobs, opts, "rewrite")
    if layout:  # the images changed: InsightFace's property file gives their new size
        write_file_property(output, inputs=records.paths,
                            storage_options=opts["storage_options"])
    return summaries
