"""The shard sink: where a run's records go when the output is a set of shards of another
format (webdataset tars, TFRecord files, Parquet files, an MDS folder).

A target is one of:

- a folder (``out/``): shards named by the format (``shard-000000.tar``, ``shard.00000.mds``,
  ``train-00000-of-00003.parquet``...), with the format's set files (MDS's ``index.json``);
- a pattern (``out/train-{000000..000099}.tar``, ``out/train-%06d.tar``): shards numbered
  from 0 with that many digits;
- one file with the format's suffix (``train.tfrecord``, ``train.parquet``): one shard.

While the run writes, the shards are in a staging folder beside the target
(``TARGET.convert.partial/``, numbered ``000000.SUFFIX``), each one fsynced and listed in its
``shards.jsonl`` once it is whole (what ``resume`` keeps: a run continues after the last whole
shard). The commit (:mod:`mxnet_recpack.pipeline.journal`) renames them to their final names as
one step, with a manifest (``.recpack.json`` in a folder target, ``.NAME.recpack.json`` beside a
file or pattern) that says which run made which files, so that a later run replaces a longer
earlier version whole (its extra shards are removed) and a resume of a finished run is a no-op.
"""

import json
import os
import re
import shutil

from ..errors import OptionError, RecpackError
from ..storage.local import io_step, remove_file
from .seams import CommitPlan

__all__ = ["ShardFormat", "ShardTarget", "ShardSink", "MANIFEST"]

MANIFEST = ".recpack.json"
_PRINTF = re.compile(r"%0?(\d*)d")
_BRACES = re.compile(r"\{(\d+)\.\.(\d+)\}")


class ShardFormat:
    """What the shard sink needs of a format (one instance per format, in its folder)."""

    #: The format's name in the table, ``--to``/``--from``.
    name = None
    #: The suffix of a shard it writes in a folder (``.tar``), and every suffix that names a
    #: shard file as a target or an input (``.tfrecord`` and ``.tfrecords``).
    suffix = None
    suffixes = ()
    #: True when only a folder can hold the output (MDS: ``index.json`` + shards).
    folder_only = False
    #: Shard size limit when none is given (bytes).
    default_shard_bytes = 1 << 30
    #: Needs a pass over the labels before writing (Parquet's label column has one type).
    needs_layout = False
    #: Extra files that go with each shard: ``(suffix, what)``.
    shard_extras = ()

    def names_shard(self, name):
        """The suffix of ``name`` when it names one of this format's shards, else None."""
        return next((x for x in self.suffixes or (self.suffix,) if name.endswith(x)), None)

    def folder_name(self, number, total):
        """A shard's name in a folder target."""
        return "shard-%06d%s" % (number, self.suffix)

    def encoder(self, options):
        """A picklable ``sample -> encoded`` (run in the workers)."""
        raise NotImplementedError

    def size_of(self, encoded):
        return len(encoded)

    def writer(self, path, options):
        """A shard writer at ``path``: ``append(encoded_list)``, ``count``, ``nbytes``,
        ``close() -> summary`` (JSON data), ``abort()``."""
        raise NotImplementedError

    def grown(self, writer, count, size):
        """The size ``writer``'s shard would have with ``count`` more records of ``size``
        bytes."""
        return writer.nbytes + size

    def extras(self, summary):
        """``[(suffix, bytes)]``: files that go beside a shard (a TFRecord index)."""
        return []

    def set_files(self, shards):
        """``[(name, bytes)]``: files of the whole set in a folder target (MDS's
        ``index.json``), from ``[(final basename, summary)]``."""
        return []


class ShardTarget:
    """Where the shards of ``path`` go, and their names."""

    def __init__(self, fmt, path, *, limited=False):
        path = os.fspath(path)
        self.fmt = fmt
        self.pattern = None
        base = os.path.basename(path.rstrip("/"))
        is_file = bool(fmt.names_shard(base)) and not fmt.folder_only
        if is_file and (_BRACES.search(base) or _PRINTF.search(base)):
            self.kind = "pattern"
            self.path = path
            self.folder = os.path.dirname(path) or "."
            found = _BRACES.search(base)
            self.pattern = _BRACES.sub("%%0%dd" % len(found.group(1)), base, count=1) \
                if found else base
            self.manifest = os.path.join(self.folder, ".%s%s" % (_stem(base), MANIFEST))
        elif is_file:
            if limited:
                raise OptionError("%s is one %s file, but a shard size was given: name a "
                                  "folder (out/) or a pattern (out/train-{000000..000099}%s) "
                                  "to write several shards" % (path, fmt.name, fmt.suffix))
            self.kind = "file"
            self.path = path
            self.folder = os.path.dirname(path) or "."
            self.manifest = os.path.join(self.folder, "." + base + MANIFEST)
        else:
            self.kind = "folder"
            self.path = path.rstrip("/") or path
            self.folder = self.path
            self.manifest = os.path.join(self.folder, MANIFEST)

    def final_names(self, total):
        """The final path of each of ``total`` shards."""
        if self.kind == "file":
            return [self.path]
        if self.kind == "pattern":
            return [os.path.join(self.folder, self.pattern % i) for i in range(total)]
        return [os.path.join(self.folder, self.fmt.folder_name(i, total)) for i in range(total)]

    def exists(self):
        if self.kind == "file":
            return os.path.lexists(self.path) or os.path.exists(self.manifest)
        if self.kind == "folder":
            return os.path.isdir(self.path) and any(
                n == MANIFEST or self.fmt.names_shard(n) or n == "index.json"
                for n in os.listdir(self.path))
        return os.path.exists(self.manifest) or os.path.exists(self.final_names(1)[0])


def _stem(base):
    return _BRACES.sub("", _PRINTF.sub("", base))


def _fsynced(path, data):
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def read_manifest(path):
    """The manifest at ``path``, or None (missing or unreadable: no run vouches for it)."""
    try:
        with open(path, encoding="utf-8") as f:
            manifest = json.load(f)
        files = manifest["files"]
        if not all(isinstance(e, dict) and isinstance(e.get("name"), str) and
                   isinstance(e.get("bytes"), int) for e in files):
            return None
        return manifest
    except (OSError, ValueError, KeyError, TypeError):
        return None


class ShardSink:
    """The files of a run writing ``target`` in format ``fmt`` (see the module doc).

    ``shard_size``: records a shard (None: no limit), ``shard_bytes``: bytes a shard (None:
    the format's default). ``options``: the format's (its writer's and encoder's).
    """

    can_append = False
    as_made = "every file its manifest lists is there, of the size it wrote"

    def __init__(self, fmt, target, tag=".convert.partial", *, shard_size=None,
                 shard_bytes=None, options=None):
        self.fmt = fmt
        self.options = dict(options or {})
        self.target = ShardTarget(fmt, target, limited=bool(shard_size or shard_bytes))
        self.name = fmt.name
        self.path = self.target.path
        self.report_path = self.path.rstrip("/") + ".failures.jsonl"
        self.staging = self.path.rstrip("/") + tag
        self.log_path = os.path.join(self.staging, "shards.jsonl")
        single = self.target.kind == "file"
        self.shard_size = None if single else shard_size
        self.shard_bytes = None if single else (shard_bytes or fmt.default_shard_bytes)
        self.shards = []  # {"number", "records", "bytes", "summary"} of each whole shard
        self.writer = None
        self.offset = 0  # bytes in whole shards and the open one
        self.records = 0  # records in whole shards and the open one
        self.resumed_records = 0

    # -- what is there ------------------------------------------------------------------------
    def exists(self):
        return self.target.exists()

    def has_partial(self):
        return os.path.isdir(self.staging)

    def temp_files(self):
        try:
            return [os.path.join(self.staging, n) for n in os.listdir(self.staging)]
        except OSError:
            return []

    def fds(self):
        return []

    def _tmp(self, number, suffix=None):
        return os.path.join(self.staging, "%06d%s" % (number, suffix or self.fmt.suffix))

    # -- opening ------------------------------------------------------------------------------
    def open_fresh(self, *, append=False):
        with io_step("creating the staging folder %s" % self.staging):
            if os.path.isdir(self.staging):
                shutil.rmtree(self.staging)
            os.makedirs(self.staging)
            _fsynced(self.log_path, b"")

    def open_append(self):
        raise OptionError("%s: %s shards cannot be appended to: convert into a new target"
                          % (self.path, self.fmt.name))

    def open_resume(self, initial_records, target, sidecar):
        """Keep the whole shards of the interrupted run (listed, and of their listed size);
        remove the shard it was writing."""
        kept, size = [], 0
        try:
            with open(self.log_path, "rb") as f:
                lines = f.read().split(b"\n")
        except OSError:
            lines = []
        for line in lines:
            try:
                entry = json.loads(line)
                number = int(entry["number"])
                ok = number == len(kept) and os.path.getsize(self._tmp(number)) == entry["bytes"]
                ok = ok and all(os.path.exists(self._tmp(number, s)) for s, _ in
                                self.fmt.shard_extras)
            except (ValueError, KeyError, TypeError, OSError):
                break
            if not ok:
                break
            kept.append(entry)
            size += len(line) + 1
        with io_step("cutting back %s" % self.log_path):
            if not os.path.isdir(self.staging):
                os.makedirs(self.staging)
            with open(self.log_path, "ab") as f:
                f.truncate(size)
                os.fsync(f.fileno())
        listed = {os.path.basename(self._tmp(e["number"], s)) for e in kept
                  for s in [self.fmt.suffix] + [x for x, _ in self.fmt.shard_extras]}
        for name in os.listdir(self.staging):
            if name not in listed and name != "shards.jsonl":
                remove_file(os.path.join(self.staging, name))
        self.shards = kept
        self.records = self.resumed_records = sum(e["records"] for e in kept)
        self.offset = sum(e["bytes"] for e in kept)

    # -- writing ------------------------------------------------------------------------------
    def _full(self, pending, size):
        """The open shard is full: ``pending`` more records of ``size`` bytes would pass a
        limit (a shard holds at least one record)."""
        w = self.writer
        count = w.count + pending
        if not count or (not self.shard_size and not self.shard_bytes):
            return False
        if self.shard_size and count >= self.shard_size:
            return True
        return bool(self.shard_bytes) and self.fmt.grown(w, pending, size) > self.shard_bytes

    def write(self, records, checked=True):
        """Append ``(key, encoded, size)`` records, starting a new shard where one is full."""
        run, size = [], 0
        for record in records:
            if self.writer is not None and self._full(len(run), size + record[2]):
                if run:
                    self._append(run)
                    run, size = [], 0
                self._close_shard()
            if self.writer is None:
                self._open_shard()
            run.append(record)
            size += record[2]
        if run:
            self._append(run)

    def _append(self, run):
        before = self.writer.nbytes
        with io_step("writing the shard %s" % self.writer.path):
            self.writer.append([r[1] for r in run])
        self.records += len(run)
        self.offset += self.writer.nbytes - before

    def _open_shard(self):
        path = self._tmp(len(self.shards))
        with io_step("creating the shard %s" % path):
            self.writer = self.fmt.writer(path, dict(self.options, shard_bytes=self.shard_bytes))

    def _close_shard(self):
        writer, self.writer = self.writer, None
        number = len(self.shards)
        with io_step("finishing the shard %s" % writer.path):
            summary = writer.close()
            for suffix, data in self.fmt.extras(summary):
                _fsynced(self._tmp(number, suffix), data)
        entry = {"number": number, "records": writer.count,
                 "bytes": os.path.getsize(writer.path), "summary": summary}
        with io_step("listing the shard in %s" % self.log_path):
            with open(self.log_path, "ab") as f:
                f.write(json.dumps(entry, sort_keys=True).encode("utf-8") + b"\n")
                f.flush()
                os.fsync(f.fileno())
        self.shards.append(entry)

    def stored_record(self, i):
        raise RecpackError("%s: a shard set keeps no record stream to compare" % self.path)

    # -- finishing ----------------------------------------------------------------------------
    def finish(self, *, keys, run, append):
        """Finish the last shard; the shards, their extras, the set's files and the manifest
        as the commit's members, the files of an earlier version of the target that this one
        does not have as removes."""
        if self.writer is not None or not self.shards:
            if self.writer is None:
                self._open_shard()  # no records: one empty shard (a valid, empty set)
            self._close_shard()
        finals = self.target.final_names(len(self.shards))
        members, files = [], []
        for entry, final in zip(self.shards, finals):
            number = entry["number"]
            members.append((self._tmp(number), final))
            files.append({"name": os.path.relpath(final, self.target.folder),
                          "records": entry["records"], "bytes": entry["bytes"]})
            for suffix, _ in self.fmt.shard_extras:
                extra = final[:-len(self.fmt.names_shard(final) or self.fmt.suffix)] + suffix
                members.append((self._tmp(number, suffix), extra))
                files.append({"name": os.path.relpath(extra, self.target.folder),
                              "bytes": os.path.getsize(self._tmp(number, suffix))})
        if self.target.kind == "folder":
            for name, data in self.fmt.set_files([(os.path.basename(f), e["summary"])
                                                  for f, e in zip(finals, self.shards)]):
                tmp = os.path.join(self.staging, "set-" + name)
                with io_step("writing %s" % tmp):
                    _fsynced(tmp, data)
                members.append((tmp, os.path.join(self.target.folder, name)))
                files.append({"name": name, "bytes": len(data)})
        manifest = {"format": self.fmt.name, "run": run, "records": self.records,
                    "files": files}
        tmp = os.path.join(self.staging, "manifest.json")
        with io_step("writing the manifest %s" % tmp):
            _fsynced(tmp, json.dumps(manifest, sort_keys=True, indent=1).encode("utf-8"))
        members.append((tmp, self.target.manifest))
        with io_step("creating the folder %s" % self.target.folder):
            os.makedirs(self.target.folder, exist_ok=True)
        return CommitPlan(members, self._stale(members), None, [self.log_path])

    def _stale(self, members):
        """Files of the earlier version (its manifest's) that the new one does not have."""
        old = read_manifest(self.target.manifest)
        if old is None:
            return []
        new = {os.path.abspath(final) for _, final in members}
        stale = []
        for entry in old["files"]:
            path = os.path.normpath(os.path.join(self.target.folder, entry["name"]))
            if os.path.abspath(path) not in new and os.path.isfile(path) and \
                    not os.path.relpath(path, self.target.folder).startswith(".."):
                stale.append(path)
        return stale

    def made_by(self, run):
        """The target was last written, whole, by the run of digest ``run``: its manifest says
        so and every file it lists is there with its size."""
        manifest = read_manifest(self.target.manifest)
        if manifest is None or manifest.get("run") is None or manifest["run"] != run:
            return False
        for entry in manifest["files"]:
            path = os.path.join(self.target.folder, entry["name"])
            if not os.path.isfile(path) or os.path.getsize(path) != entry["bytes"]:
                return False
        return True

    def close_files(self):
        if self.writer is not None:
            try:
                self.writer.abort()
            except OSError:
                pass
            self.writer = None
        try:  # empty once committed or discarded
            os.rmdir(self.staging)
        except OSError:
            pass
