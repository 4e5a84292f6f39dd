"""The names of the files that belong together: ``train.rec`` beside ``train.idx``, its parts,
its failure report. Readers find a pair by these names, so every module asks here.

Local paths and URLs alike (plain string operations).
"""

import os

__all__ = ["stem", "rec_path_for", "index_path_for", "report_path_for", "crc_path_for",
           "part_path", "strip_suffix"]


def strip_suffix(path, suffix):
    """``path`` without ``suffix`` when it ends with it, else ``path`` unchanged."""
    path = os.fspath(path)
    return path[:-len(suffix)] if suffix and path.endswith(suffix) else path


def stem(rec_path):
    """``train.rec`` -> ``train`` (a name without ``.rec`` is its own stem)."""
    return strip_suffix(rec_path, ".rec")


def rec_path_for(prefix):
    """``train`` -> ``train.rec`` (``train.rec`` stays as it is)."""
    prefix = os.fspath(prefix)
    return prefix if prefix.endswith(".rec") else prefix + ".rec"


def index_path_for(rec_path):
    """``train.rec`` -> ``train.idx`` (any other name gets ``.idx`` appended)."""
    return stem(rec_path) + ".idx"


def report_path_for(rec_path):
    """``train.rec`` -> ``train.failures.jsonl``: where skipped items are listed."""
    return stem(rec_path) + ".failures.jsonl"


def crc_path_for(rec_path):
    """``train.rec`` -> ``train.crc``: the checksum sidecar."""
    return stem(rec_path) + ".crc"


def part_path(rec_path, part):
    """``train.rec`` -> ``train.part003.rec`` for part 3."""
    return "%s.part%03d.rec" % (stem(rec_path), part)
