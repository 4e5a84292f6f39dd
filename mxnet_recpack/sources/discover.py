"""Finding images in a folder tree and writing im2rec ``.lst`` files (``im2rec.py --list``).

:func:`make_list` writes the same files, byte for byte, as MXNet's ``tools/im2rec.py --list``
given the same options, and also records the class-name -> label mapping in
``PREFIX.classes.tsv``. Standard library only.
"""

from __future__ import annotations

import logging
import os
import random
from typing import Sequence

from ..errors import OptionError
from ..options import D, validate

__all__ = ["list_images", "make_list", "split_by_ratio"]

logger = logging.getLogger(__name__)


def _check_root(root):
    root = os.path.abspath(os.fspath(root))
    if not os.path.exists(root):
        raise FileNotFoundError("image root folder %r does not exist" % root)
    if not os.path.isdir(root):
        raise NotADirectoryError("image root %r is not a folder; pass the folder that holds "
                                 "the images" % root)
    return root


def _check_exts(exts):
    exts = validate("exts", exts)
    for e in exts:
        if e != e.lower() or (e and not e.startswith(".")):
            # im2rec.py compares the *lowercased* suffix, dot included, with exts as given.
            logger.warning("extension %r can never match: file suffixes are compared "
                           "lowercased and with their leading dot, e.g. '.jpg'", e)
    return exts


def list_images(root, *, recursive=D.recursive, exts=D.exts):
    """List the images under `root` the way ``im2rec.py`` does.

    Parameters
    ----------
    root : str or os.PathLike
        Folder that holds the images.
    recursive : bool, optional
        If False, only files directly in `root` are listed, all with label 0. If True, the tree
        is walked (following symlinks, folders and files visited in sorted order) and each folder
        that holds at least one image gets the next label, in order of first image found.
    exts : sequence of str, optional
        Accepted extensions; a file matches when its lowercased suffix (with the dot) is one of
        them.

    Returns
    -------
    items : list of tuple
        ``(index, relative_path, label)`` per image, ``index`` counting from 0 in listing order.
    classes : list of str
        ``classes[label]`` is the folder of that class relative to `root` (``"."`` for `root`
        itself). Non-recursive listing always returns ``["."]``.

    Raises
    ------
    FileNotFoundError, NotADirectoryError
        `root` is missing or is not a folder.
    OptionError
        `exts` is empty.
    """
    root = _check_root(root)
    exts = _check_exts(exts)
    items, unlisted = [], []

    def add(full, label_of):
        rel = os.path.relpath(full, root)
        if _unlistable(rel):
            unlisted.append(rel)
        else:
            items.append((len(items), rel, label_of()))

    if not recursive:
        for name in sorted(os.listdir(root)):
            full = os.path.join(root, name)
            if os.path.splitext(name)[1].lower() in exts and os.path.isfile(full):
                add(full, lambda: 0)
        classes = ["."]
    else:
        labels = {}
        for folder, dirs, files in os.walk(root, followlinks=True):
            dirs.sort()  # in place, so that os.walk descends in sorted order
            for name in sorted(files):
                full = os.path.join(folder, name)
                if os.path.splitext(name)[1].lower() in exts and os.path.isfile(full):
                    add(full, lambda folder=folder: labels.setdefault(folder, len(labels)))
        classes = [os.path.relpath(folder, root) for folder in labels]  # dicts keep order
    if unlisted:
        logger.warning("%d image(s) left out of the list: their names hold a tab, a line break, "
                       "leading or trailing spaces, or bytes that are not UTF-8, which a .lst "
                       "line cannot carry (packing would drop or refuse them); rename them to "
                       "include them: %s", len(unlisted),
                       ", ".join(repr(n) for n in unlisted[:5]) + (" ..." if len(unlisted) > 5
                                                                   else ""))
    return items, classes


def _unlistable(rel):
    """True for a relative path that an im2rec ``.lst`` line cannot carry as it is."""
    if any(c in rel for c in "\t\n\r") or rel != rel.strip():
        return True
    try:
        rel.encode("utf-8")
    except UnicodeEncodeError:  # undecodable bytes (surrogate escapes)
        return True
    return False


def _write_lst(path, items, written):
    with open(path, "w", encoding="utf-8", errors="surrogateescape") as out:
        for index, relpath, label in items:
            out.write("%d\t%f\t%s\n" % (index, label, relpath))
    written.append(path)


def make_list(root: str | os.PathLike, prefix: str | os.PathLike, *,
              recursive: bool = D.recursive, exts: Sequence[str] = D.exts,
              train_ratio: float = D.train_ratio, test_ratio: float = D.test_ratio,
              chunks: int = D.chunks, shuffle: bool = D.shuffle, seed: int = D.seed) -> list[str]:
    """Write im2rec ``.lst`` file(s) for the images under `root`, like ``im2rec.py --list``.

    The items of :func:`list_images` are shuffled (unless `shuffle` is False) with
    ``random.Random(seed).shuffle`` (the global random state is untouched), cut into `chunks`
    chunks of ``ceil(N / chunks)`` items, and each chunk is written as ``PREFIX[_i].lst`` when
    ``train_ratio == 1``, else split into ``PREFIX[_i]_test.lst`` (first
    ``int(chunk_size * test_ratio)`` items, only when ``test_ratio > 0``), ``PREFIX[_i]_val.lst``
    (what is left after test and train, only when ``train_ratio + test_ratio < 1``) and
    ``PREFIX[_i]_train.lst`` (the next ``int(chunk_size * train_ratio)`` items; ``chunk_size``
    is that of a full chunk even for a shorter last one). Lines are ``index<TAB>label<TAB>path``,
    label as ``%f``. ``PREFIX.classes.tsv`` gets a ``label<TAB>class_folder`` line per class.

    Parameters
    ----------
    root : str or os.PathLike
        Folder that holds the images.
    prefix : str or os.PathLike
        Output path prefix, may include a folder, which must exist. It is made absolute like
        ``im2rec.py`` does (so a trailing slash is dropped: ``"out/"`` writes ``out.lst``).
    recursive, exts
        As in :func:`list_images`.
    train_ratio, test_ratio : float, optional
        Fractions of each chunk for training and testing, each in [0, 1], sum at most 1.
    chunks : int, optional
        Number of chunks, at least 1. Chunks beyond the images are written empty.
    shuffle : bool, optional
        Shuffle the items before splitting (``im2rec.py --no-shuffle`` is ``shuffle=False``).
    seed : int, optional
        Seed of the shuffle; the default 100 reproduces ``im2rec.py``.

    Returns
    -------
    list of str
        Absolute paths of the ``.lst`` files written, in writing order (without the ``.tsv``).

    Raises
    ------
    OptionError
        An option is out of range.
    FileNotFoundError, NotADirectoryError
        `root` is not a folder, or the folder of `prefix` does not exist.
    """
    _check_split(train_ratio, test_ratio, chunks)
    prefix = os.path.abspath(os.fspath(prefix))
    if not os.path.isdir(os.path.dirname(prefix)):
        raise FileNotFoundError("output folder %r of prefix %r does not exist; create it first"
                                % (os.path.dirname(prefix), prefix))
    items, classes = list_images(root, recursive=recursive, exts=exts)
    if not items:
        hint = ""
        if not recursive and list_images(root, recursive=True, exts=exts)[0]:
            hint = ("; its subfolders have images: list them with --recursive "
                    "(recursive=True), which gives each subfolder its own label")
        logger.warning("no image with extension in %s found in %r%s; writing empty list "
                       "files%s", exts, os.path.abspath(os.fspath(root)),
                       "" if recursive else " (not recursive: only files directly in it)", hint)
    written = []
    for suffix, chunk in split_by_ratio(items, train_ratio=train_ratio, test_ratio=test_ratio,
                                        chunks=chunks, shuffle=shuffle, seed=seed):
        _write_lst(prefix + suffix + ".lst", chunk, written)
    with open(prefix + ".classes.tsv", "w", encoding="utf-8", errors="surrogateescape") as out:
        out.writelines("%d\t%s\n" % (label, name) for label, name in enumerate(classes))
    return written


def _check_split(train_ratio, test_ratio, chunks):
    train_ratio = validate("train_ratio", train_ratio)
    test_ratio = validate("test_ratio", test_ratio)
    if train_ratio + test_ratio > 1.0 + 1e-9:
        raise OptionError("train_ratio + test_ratio must be at most 1, got %r + %r = %r"
                          % (train_ratio, test_ratio, train_ratio + test_ratio))
    return train_ratio, test_ratio, validate("chunks", chunks)


def split_by_ratio(items, *, train_ratio=D.train_ratio, test_ratio=D.test_ratio,
                   chunks=D.chunks, shuffle=D.shuffle, seed=D.seed):
    """Cut ``items`` as ``im2rec.py --list`` does: ``[(suffix, items), ...]`` in writing order.

    Shuffled (unless ``shuffle`` is False) with ``random.Random(seed).shuffle`` on a copy, cut
    into ``chunks`` chunks of ``ceil(N / chunks)``, each split into test (first
    ``int(chunk_size * test_ratio)``, only when ``test_ratio > 0``), val (what is left after
    test and train, only when ``train_ratio + test_ratio < 1``) and train (the next
    ``int(chunk_size * train_ratio)``); suffixes ``[_i][_test|_val|_train]``.
    """
    train_ratio, test_ratio, chunks = _check_split(train_ratio, test_ratio, chunks)
    items = list(items)
    if validate("shuffle", shuffle):
        random.Random(validate("seed", seed)).shuffle(items)
    chunk_size = (len(items) + chunks - 1) // chunks
    n_train = int(chunk_size * train_ratio)
    n_test = int(chunk_size * test_ratio)
    out = []
    for i in range(chunks):
        chunk = items[i * chunk_size:(i + 1) * chunk_size]
        base = "_%d" % i if chunks > 1 else ""
        if train_ratio == 1.0:
            out.append((base, chunk))
            continue
        if test_ratio:
            out.append((base + "_test", chunk[:n_test]))
        if train_ratio + test_ratio < 1.0:
            out.append((base + "_val", chunk[n_test + n_train:]))
        out.append((base + "_train", chunk[n_test:n_test + n_train]))
    return out
