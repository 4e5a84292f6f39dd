"""Writing many small buffers to a shard with few system calls: ``os.writev`` of up to
``IOV_MAX`` buffers at a time (no joined copy), partial writes continued, ``os.write`` where
there is no ``writev`` (Windows)."""

import os

__all__ = ["write_all"]

_IOV = 512  # buffers a call; below every system's IOV_MAX (1024 on Linux and macOS)


def write_all(fd, buffers):
    """Write ``buffers`` (bytes-like, in order) to the descriptor ``fd``; returns the bytes
    written."""
    views = [memoryview(b).cast("B") for b in buffers if len(b)]
    total = 0
    if not hasattr(os, "writev"):  # pragma: no cover - Windows
        for view in views:
            while len(view):
                n = os.write(fd, view)
                total += n
                view = view[n:]
        return total
    while views:
        chunk = views[:_IOV]
        n = os.writev(fd, chunk)
        total += n
        done = 0
        while done < len(chunk) and n >= len(chunk[done]):
            n -= len(chunk[done])
            done += 1
        if done < len(chunk) and n:
            chunk[done] = chunk[done][n:]
        views = chunk[done:] + views[len(chunk):]
    return total
