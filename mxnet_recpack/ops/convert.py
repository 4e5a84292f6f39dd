"""``convert``: records from one format into another, losslessly (see ``docs/formats.md``).

RecordIO on one side or none: ``.rec -> webdataset | tfrecord | parquet | mds``, the way back,
and between two of the others. Images are copied byte for byte, never re-encoded; every header
field (flag, labels, id, id2, the key) goes along, so ``.rec -> X -> .rec`` gives back the same
``.rec`` and ``.idx``. A conversion keeps every record or writes nothing: a record that cannot
be read stops it, naming the record, before anything is committed.
"""

from __future__ import annotations

import os

from ..errors import OptionError
from ..formats.items import ShardItems
from ..formats.parquet.dataset import is_hf_dataset
from ..formats.recordio.items import RecordSamples
from ..formats.registry import FORMATS, detect
from ..formats.shards import ShardSink
from ..format.header import RecordPayload
from ..formats.sample import payload_of, sample_from_payload
from ..options import D, validate
from ..storage import is_url
from ..pipeline.shardrun import write_shards
from ..pipeline.writer import RecordFileWriter
from .edit import check_output, open_inputs
from .rewrite import REWRITE_OPTIONS, Reencode

__all__ = ["convert"]

_RULES = ("label", "image_column", "label_column")


def _check_paths(src, dst):
    if isinstance(src, (str, os.PathLike)) and os.path.abspath(os.fspath(src)).rstrip("/") == \
            os.path.abspath(os.fspath(dst)).rstrip("/"):
        raise OptionError("%s: the output is the input; convert into a new path" % dst)


def _source(src, row, rules, storage_options):
    if row.name == "recordio":
        return RecordSamples(open_inputs([src], storage_options))
    return ShardItems(row.shards, src, rules)


class _Reencoded:
    """``samples`` with each image re-encoded by ``edit`` (:class:`~.rewrite.Reencode`)."""

    def __init__(self, samples, edit):
        self.samples, self.edit = samples, edit
        self.record_keys = samples.record_keys
        self.record_item_gil_free = edit.gil_free

    def __len__(self):
        return len(self.samples)

    def sample(self, i):
        key = int(self.record_keys[i])
        return sample_from_payload(key, self.record_item(i))

    def record_item(self, i):
        key = int(self.record_keys[i])
        return RecordPayload(self.edit(payload_of(self.samples.sample(i)), key))

    __getitem__ = record_item

    def record_source(self, i):
        return self.samples.record_source(i)

    def fingerprint(self):
        return dict(self.samples.fingerprint(), reencode=sorted(self.edit.options.items()))

    def pickle_parts(self):
        return self.samples.pickle_parts()


def _reencoding(samples, reencode):
    """``samples``, re-encoded when ``reencode`` (rewrite's image options) asks for it."""
    if not reencode:
        return samples
    unknown = sorted(set(reencode) - set(REWRITE_OPTIONS))
    if unknown:
        raise OptionError("reencode takes %s, not %s" % (", ".join(REWRITE_OPTIONS),
                                                         ", ".join(unknown)))
    options = {n: validate(n, reencode.get(n, getattr(D, n))) for n in REWRITE_OPTIONS}
    return _Reencoded(samples, Reencode(options))


def _shard_options(row, samples, options):
    opts = {k: v for k, v in options.items() if v is not None}
    if row.shards.needs_layout:  # the header fields decide it: no image bytes are read
        header = getattr(samples, "header_sample", samples.sample)
        opts["layout"] = row.shards.layout((header(i) for i in range(len(samples))), opts)
    return opts


def convert(src, dst, *, to: str | None = None, from_: str | None = None,
            shard_size: int | None = None, shard_bytes: int | None = None,
            label: float | None = None, image_column: str | None = None,
            label_column: str | None = None, label_kind: str | None = None,
            image_encoding: str | None = None, reencode: dict | None = None,
            overwrite: bool = D.overwrite,
            resume: bool = D.resume, num_workers: int = D.num_workers,
            batch_size: int = D.batch_size, progress=None, storage_options=None):
    """Convert the records at ``src`` into ``dst`` (formats told from the paths, or ``from_``
    / ``to``: ``recordio``, ``webdataset``, ``tfrecord``, ``parquet``, ``mds``). ``src`` may
    also be a ``datasets.Dataset`` (Hugging Face) object, read by the Parquet rules.

    Parameters
    ----------
    shard_size, shard_bytes : int, optional
        Start a new shard after this many records or before this many bytes (outputs that are
        a folder or a pattern; defaults: the format's, e.g. 1 GiB tars, 64 MB MDS shards).
    label : float, optional
        The label of samples that have none (other writers' files); without it such a
        sample is refused.
    image_column, label_column : str, optional
        Parquet inputs: where the images and labels are.
    label_kind : {'int', 'float', 'vector'}, optional
        Parquet outputs: the label column's type (default: chosen from the labels).
    image_encoding : {'bytes', 'jpeg', 'png'}, optional
        MDS outputs: the ``image`` column's encoding (default ``bytes``).
    reencode : dict, optional
        Re-encode the images on the way with ``rewrite``'s image options (``{"resize": 256,
        "quality": 90}``: ``resize``, ``center_crop``, ``color``, ``inter_method``,
        ``reduced_decode``, ``max_pixels``, ``encoding``, ``quality``); by default images are
        copied byte for byte.
    overwrite, resume, num_workers, batch_size, progress
        As for every command (a resume continues after the last whole shard).

    Returns
    -------
    WriteSummary
    """
    src_row = detect(src, "parquet" if is_hf_dataset(src) else from_, role="input")
    dst_row = detect(dst, to, role="output")
    _check_paths(src, dst)
    if src_row.name == "recordio" and dst_row.name == "recordio":
        raise OptionError("%s and %s are both RecordIO: use `recpack merge` (or rewrite, to "
                          "re-encode) to copy records between record files" % (src, dst))
    for path, row, side in ((src, src_row, "read"), (dst, dst_row, "written")):
        if row.name != "recordio" and isinstance(path, str) and is_url(path):
            raise OptionError(
                "%s: %s shards are %s on local disks only (a .rec is read and written at "
                "s3:// URLs): convert on a local disk, then copy the folder (aws s3 sync, "
                "fsspec put)" % (path, row.name, side))
    rules = {"label": label, "image_column": image_column, "label_column": label_column}
    rules = {k: v for k, v in rules.items() if v is not None}
    samples = _reencoding(_source(src, src_row, rules, storage_options), reencode)
    description = {"operation": "convert", "from": src_row.name, "to": dst_row.name,
                   "source": samples.fingerprint(), "shard_size": shard_size,
                   "shard_bytes": shard_bytes, "label_kind": label_kind,
                   "image_encoding": image_encoding}
    if dst_row.name == "recordio":
        check_output(dst, [])
        with RecordFileWriter(dst, overwrite=overwrite, resume=resume, max_failures=0,
                              storage_options=storage_options) as writer:
            summary = writer.write_dataset(samples, num_workers=num_workers,
                                           batch_size=batch_size, progress=progress,
                                           run_info=description)
        return summary if summary.status == "already complete" else writer.summary
    options = _shard_options(dst_row, samples, {"label_kind": label_kind,
                                               "image_encoding": image_encoding})
    sink = ShardSink(dst_row.shards, dst, shard_size=shard_size, shard_bytes=shard_bytes,
                     options=options)
    return write_shards(samples, sink, description=description, overwrite=overwrite,
                        resume=resume, num_workers=num_workers, batch_size=batch_size,
                        progress=progress)


FORMAT_NAMES = tuple(FORMATS)
