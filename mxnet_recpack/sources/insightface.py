"""InsightFace's face-dataset layout: what MS1M, Glint360K and WebFace ``.rec`` files hold, as
``arcface_torch``'s ``MXFaceDataset`` (and ``arcface_mxnet``'s ``FaceImageIter``) read them.

For N images of M identities (the classic layout of ``face2rec2.py`` and ``RecBuilder``)::

    key 0          label-only, flag 2, label [N+1, N+1+M]   (the header record)
    keys 1..N      the images, each identity's together; label: the identity (a scalar, or
                   [identity, aligned] as face2rec2.py writes it)
    keys N+1..N+M  label-only, flag 2, label [first image key, one past the last]

Readers take the images as keys ``1 .. label[0]-1`` of the header and the identities as keys
``label[0] .. label[1]-1``. InsightFace's newer ``RecBuilder`` (``python-package``) writes
images from key 0 with no header and no identity records: that is an ordinary file here.

What this package writes (:func:`build_layout`) follows ``arcface_mxnet``'s ``RecBuilder``
(``recognition/arcface_mxnet/common/rec_builder.py``): images first, then one identity record
per identity that has images, in identity order, then the header record, whose ``id2`` is 1
(every other record's is 0). An identity number no image has gets no record (``RecBuilder``
writes none; a reader sampling identities would meet an empty range), unless
``keep_empty=True``: then identity ``j`` is record ``N+1+j``.
"""

from collections import namedtuple

import numpy as np

from ..errors import RecordFormatError
from ..format.header import label_only_record

__all__ = ["FaceLayout", "read_layout", "check_layout", "identity_labels", "build_layout",
           "face_classes", "layout_summary", "FaceLayoutDataset"]

#: ``images``/``identities``: RecordSet positions of keys ``1 .. first-1`` and ``first ..
#: end-1`` (-1 where a key is missing); ``header``: the header record's position.
FaceLayout = namedtuple("FaceLayout", ["header", "first", "end", "images", "identities"])


def read_layout(records):
    """The InsightFace layout of a :class:`~mxnet_recpack.sources.records.RecordSet`, or None
    when key 0 is not a label-only header record with ``flag >= 2``."""
    p = records.find(0)
    if p is None or records.has_image[p]:
        return None
    header = records.header(p)
    if header.flag < 2:
        return None
    first, end = (float(v) for v in header.label[:2])
    if first != int(first) or end != int(end) or not 1 <= first <= end:
        raise RecordFormatError(
            "key 0 looks like an InsightFace header record but its label [%g, %g] is not "
            "[first identity key, end] (integers, 1 <= first <= end)" % (first, end),
            path=records.where(p)[0], offset=records.where(p)[1])
    first, end = int(first), int(end)
    return FaceLayout(p, first, end, records.positions_of(np.arange(1, first)),
                      records.positions_of(np.arange(first, end)))


def _ranges(records, layout):
    """``(M, 2)`` identity ranges, ``[-1, -1]`` where the record is missing or has no range."""
    ranges = np.full((len(layout.identities), 2), -1, np.int64)
    for j, p in enumerate(layout.identities):
        if p >= 0 and not records.has_image[p]:
            header = records.header(int(p))
            if header.flag >= 2:
                ranges[j] = [int(header.label[0]), int(header.label[1])]
    return ranges


def check_layout(records, layout, *, limit=20):
    """``(problems, notes)`` of an InsightFace-layout file: ``problems`` are ``(key,
    message)`` pairs for what breaks readers that follow the layout (missing images, identity
    records that are missing or whose ranges leave the images or overlap); ``notes`` say what
    is unusual but read fine (images outside every identity, labels that differ from their
    identity's number, records outside the layout)."""
    problems, notes = [], []
    missing = np.flatnonzero(layout.images < 0)
    for i in missing[:limit]:
        problems.append((int(i) + 1, "InsightFace layout: image key %d (the header says keys "
                         "1..%d are images) is missing" % (i + 1, layout.first - 1)))
    present = layout.images[layout.images >= 0]
    for p in present[~records.has_image[present]][:limit]:
        problems.append((int(records.keys[p]), "InsightFace layout: key %d should be an image "
                         "but holds only a label" % records.keys[p]))
    ranges = _ranges(records, layout)
    for j in np.flatnonzero(ranges[:, 0] < 0)[:limit]:
        problems.append((layout.first + int(j), "InsightFace layout: identity record %d is "
                         "missing or has no [first, end) label" % (layout.first + j)))
    good = ranges[ranges[:, 0] >= 0]
    bad = (good[:, 0] < 1) | (good[:, 1] > layout.first) | (good[:, 0] > good[:, 1])
    if bad.any():
        a, b = good[np.flatnonzero(bad)[0]]
        problems.append((None, "InsightFace layout: %d identity range(s) leave the images "
                         "1..%d, e.g. [%d, %d)" % (bad.sum(), layout.first - 1, a, b)))
    spans = good[~bad & (good[:, 1] > good[:, 0])]
    spans = spans[np.argsort(spans[:, 0], kind="stable")]
    if len(spans) > 1 and (spans[1:, 0] < spans[:-1, 1]).any():
        problems.append((None, "InsightFace layout: identity ranges overlap (an image would "
                         "belong to two identities)"))
    covered = int((spans[:, 1] - spans[:, 0]).sum()) if len(spans) else 0
    if not problems and covered != layout.first - 1:
        notes.append("InsightFace layout: %d of %d images are in no identity's range"
                     % (layout.first - 1 - covered, layout.first - 1))
    if not problems:
        mixed, split = _label_mismatches(records, layout, ranges)
        if mixed:
            notes.append("InsightFace layout: %d image(s) carry a label other than the first "
                         "image of the identity range that holds them" % mixed)
        if split:
            notes.append("InsightFace layout: %d identities have images in more than one "
                         "identity range" % split)
    outside = len(records) - 1 - len(present) - int((layout.identities >= 0).sum())
    if outside > 0:
        notes.append("InsightFace layout: %d record(s) outside it (keys >= %d): readers that "
                     "follow the layout never see them" % (outside, layout.end))
    return problems, notes


def _label_mismatches(records, layout, ranges):
    """``(images whose label is not their range's, identities found in several ranges)``; a
    range's identity is the label of its first image (a vector label's first value)."""
    values = np.array([float(v) if np.ndim(v) == 0 else float(v[0])
                       for v in records.labels(layout.images)])
    mixed, split, seen = 0, 0, set()
    for a, b in ranges:
        if b > a:
            identity = values[a - 1]
            mixed += int((values[a - 1:b - 1] != identity).sum())
            split += identity in seen
            seen.add(identity)
    return mixed, split


def identity_labels(labels, where="label"):
    """The identity of each label (a number, or a vector's first value, as ``MXFaceDataset``
    takes it) as int64; raises for one that is not an integer >= 0."""
    out = np.empty(len(labels), np.int64)
    for i, label in enumerate(labels):
        value = float(label) if np.ndim(label) == 0 else float(np.asarray(label)[0])
        if value != int(value) or value < 0:
            raise RecordFormatError("%s %r of record %d is not an identity number (an integer "
                                    ">= 0), which the InsightFace layout needs" % (where, value,
                                                                                   i))
        out[i] = int(value)
    return out


def build_layout(identities, keep_empty=False):
    """The layout for images with these identities (in their order): ``(order, identity
    records, header record)``. ``order`` puts each identity's images together (stable);
    image ``order[i]`` gets key ``i + 1``. One identity record per identity that has images,
    in identity order; ``keep_empty``: one per number ``0 .. max`` (an empty range for a
    number no image has), so that record ``N+1+j`` is identity ``j``. The header's ``id2``
    is 1, as ``RecBuilder`` writes it."""
    identities = np.asarray(identities, dtype=np.int64)
    n = len(identities)
    order = np.argsort(identities, kind="stable")
    counts = np.bincount(identities, minlength=1) if n else np.zeros(0, np.int64)
    starts = 1 + np.concatenate(([0], np.cumsum(counts)[:-1])) if n else counts
    numbers = np.arange(len(counts)) if keep_empty else np.flatnonzero(counts)
    records = [label_only_record([starts[j], starts[j] + counts[j]], n + 1 + r)
               for r, j in enumerate(numbers.tolist())]
    header = label_only_record([n + 1, n + 1 + len(records)], 0, id2=1)
    return order, records, header


def face_classes(identities):
    """The number of classes InsightFace's ``property`` file gives for these identities:
    the largest one + 1, as ``RecBuilder`` counts them (0 for none)."""
    identities = np.asarray(identities, dtype=np.int64)
    return int(identities.max()) + 1 if len(identities) else 0


def layout_summary(records, layout):
    """What ``inspect`` shows: images, identities, images per identity."""
    ranges = _ranges(records, layout)
    sizes = (ranges[:, 1] - ranges[:, 0])[ranges[:, 0] >= 0]
    per = {"min": int(sizes.min()), "median": float(np.median(sizes)),
           "max": int(sizes.max())} if len(sizes) else None
    return {"images": layout.first - 1, "identities": layout.end - layout.first,
            "images_per_identity": per, "first_identity_key": layout.first,
            "end_key": layout.end}


class FaceLayoutDataset:
    """Images (a dataset of ``(image, label)`` in any order, labels the identities) as the
    InsightFace layout: the images of each identity together at keys ``1..N``, then the
    identity records, then the header record at key 0 (the order InsightFace's ``RecBuilder``
    writes)."""

    def __init__(self, images, identities, keep_empty=False):
        order, made, header = build_layout(identities, keep_empty)
        self.images, self.order = images, order
        self.identities = len(made)
        n = len(order)
        self._made = {n + j: rec for j, rec in enumerate(made)}
        self._made[n + len(made)] = header
        self.record_keys = np.concatenate((np.arange(1, n + 1 + len(made)), [0])).astype(
            np.uint64)
        getter = getattr(images, "record_item", None)
        self._get = getter if getter is not None else images.__getitem__
        self.record_item_gil_free = getter is not None

    def __len__(self):
        return len(self.order) + len(self._made)

    def record_item(self, i):
        made = self._made.get(int(i))
        return made if made is not None else self._get(int(self.order[i]))

    __getitem__ = record_item

    def record_source(self, i):
        source = getattr(self.images, "record_source", None)
        if int(i) in self._made or source is None:
            return "InsightFace layout record %d" % self.record_keys[i]
        return source(int(self.order[i]))

    def fingerprint(self):
        inner = getattr(self.images, "fingerprint", None)
        return {"insightface": True, "images": inner() if callable(inner) else len(self.order),
                "identities": self.identities}

    def pickle_parts(self):
        return [("the images %s" % type(self.images).__name__, self.images)]
