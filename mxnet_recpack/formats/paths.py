"""The files a format's input path names: one file, a folder of them, a glob, or webdataset's
brace pattern (``train-{000000..000099}.tar``: every number of the range, with its digits)."""

import glob
import os
import re

from ..errors import RecpackError

__all__ = ["expand_inputs", "expand_braces"]

_BRACES = re.compile(r"\{(\d+)\.\.(\d+)\}")


def expand_braces(path):
    """Every path of a brace pattern (the first range; one pattern at a time), or None."""
    found = _BRACES.search(path)
    if found is None:
        return None
    low, high = found.group(1), found.group(2)
    width = len(low)
    return [path[:found.start()] + "%0*d" % (width, n) + path[found.end():]
            for n in range(int(low), int(high) + 1)]


def expand_inputs(path, suffixes, *, probe=False, recursive=False):
    """The files ``path`` names that end with one of ``suffixes``, in order. With ``probe``:
    whether there are any (no error). Otherwise raises a RecpackError that says what was
    looked for when there are none, or when a pattern's file is missing."""
    path = os.fspath(path)
    braces = expand_braces(path)
    if braces is not None:
        missing = [p for p in braces if not os.path.isfile(p)]
        if probe:
            return path.endswith(suffixes)
        if missing:
            raise RecpackError("%s: %d of the %d files of the pattern are missing (first: %s): "
                               "give the range of the files there are" % (
                                   path, len(missing), len(braces), missing[0]))
        return braces
    if glob.has_magic(path):
        files = sorted(p for p in glob.glob(path) if p.endswith(suffixes) and os.path.isfile(p))
    elif os.path.isdir(path):
        if recursive:
            files = sorted(os.path.join(root, n) for root, dirs, names in os.walk(path)
                           for n in names if n.endswith(suffixes))
        else:
            files = sorted(os.path.join(path, n) for n in os.listdir(path)
                           if n.endswith(suffixes) and os.path.isfile(os.path.join(path, n)))
    else:
        files = [path] if path.endswith(suffixes) and (probe or os.path.exists(path)) else []
        if not probe and path.endswith(suffixes) and not os.path.exists(path):
            raise RecpackError("%s: no such file" % path)
    if probe:
        return bool(files)
    if not files:
        raise RecpackError("%s: no %s files there" % (path, " or ".join(suffixes)))
    return files
