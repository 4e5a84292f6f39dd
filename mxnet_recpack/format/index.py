"""The ``.idx`` file beside a ``.rec``: one ``key<TAB>offset`` line per record, in file order.

MXNet's Python reader splits each line on the tab; DALI and dmlc's indexed splitter sort the
offsets and take each record's size from the gap to the next one, so every record must be
listed, once, and nothing else. Standard library only.
"""

import os

from ..errors import IndexFormatError
from .names import rec_path_for, strip_suffix

__all__ = [
    "format_index_line",
    "parse_index_line",
    "complete_lines",
    "read_index",
]


def format_index_line(key, offset):
    """One ``.idx`` line, exactly as ``MXIndexedRecordIO.write_idx`` writes it."""
    return "%d\t%d\n" % (key, offset)


def parse_index_line(line):
    """``'12\t3456'`` -> ``(12, 3456)``; ``ValueError`` for anything else."""
    key, offset = line.split("\t")
    return int(key), int(offset)


def complete_lines(path):
    """The whole (newline-terminated) lines of a text file; a torn last line is dropped, and a
    missing file has none (what an interrupted writer left behind)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return []
    end = data.rfind(b"\n")
    return data[:end + 1].decode("utf-8", "replace").splitlines() if end >= 0 else []


def read_index(path, *, text=None):
    """Parse an ``.idx`` file into a list of ``(key, offset)`` in file order.

    Raises
    ------
    IndexFormatError
        Naming the line number, for a line that is not ``integer<TAB>integer``.
    FileNotFoundError
        When the file is missing (with the fix in the message).
    """
    path = os.fspath(path)
    if text is None:
        try:
            with open(path, "r", encoding="ascii", newline="") as f:
                text = f.read()
        except FileNotFoundError as exc:
            raise FileNotFoundError(
                "%s: index file not found; rebuild it with `recpack index %s`"
                % (path, rec_path_for(strip_suffix(path, ".idx")))) from exc
        except UnicodeDecodeError as exc:
            raise IndexFormatError("%s: not a text index file (byte %d is not ASCII)"
                                   % (path, exc.start)) from exc
    entries = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        fields = line.strip().split("\t")
        if fields == [""]:
            raise IndexFormatError("%s:%d: empty line; every line must be 'key<TAB>offset'"
                                   % (path, lineno))
        if len(fields) != 2:
            raise IndexFormatError("%s:%d: expected 'key<TAB>offset', found %r"
                                   % (path, lineno, line))
        try:
            key, offset = int(fields[0]), int(fields[1])
        except ValueError as exc:
            raise IndexFormatError("%s:%d: key and offset must be integers, found %r"
                                   % (path, lineno, line)) from exc
        if offset < 0:
            raise IndexFormatError("%s:%d: negative offset %d" % (path, lineno, offset))
        entries.append((key, offset))
    return entries
