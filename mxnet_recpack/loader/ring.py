"""A ring of batch buffers in shared memory, allocated once: workers decode into a slot, the
training process reads the slot in place.

The ring is one file in ``/dev/shm`` (a RAM file system; elsewhere the temporary folder, whose
pages stay in the page cache), mapped by every process. Each worker opens it by name when it
starts (under fork, spawn and forkserver alike); once all have, the training process removes
the name, so nothing outlives the processes, not even after ``kill -9``. The mapping itself
lives until the last array over it is gone: a batch kept past the loader's end stays valid.
"""

import mmap
import os
import tempfile

import numpy as np

__all__ = ["Ring", "attach"]


def _folder():
    return "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) \
        else tempfile.gettempdir()


class Ring:
    """``slots`` buffers of ``slot_bytes`` each, in a new shared file."""

    def __init__(self, slots, slot_bytes):
        self.slots, self.slot_bytes = int(slots), max(int(slot_bytes), 1)
        fd, self.path = tempfile.mkstemp(prefix="recpack-ring-", dir=_folder())
        try:
            os.ftruncate(fd, self.slots * self.slot_bytes)
            self._map = mmap.mmap(fd, self.slots * self.slot_bytes)
        except BaseException:
            os.close(fd)
            self.unlink()
            raise
        os.close(fd)

    def unlink(self):
        """Remove the name (the memory stays while it is mapped)."""
        if self.path:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
            self.path = None

    def view(self, slot, shape, dtype):
        """Slot ``slot`` as an array of ``shape`` (a batch), over the shared memory."""
        return slot_view(self._map, slot, self.slot_bytes, shape, dtype)

    def close(self):
        self.unlink()
        try:
            self._map.close()
        except BufferError:  # batches the caller still holds: freed with the last of them
            pass


def slot_view(mapping, slot, slot_bytes, shape, dtype):
    count = int(np.prod(shape)) if len(shape) else 1
    return np.frombuffer(mapping, dtype=dtype, count=count,
                         offset=slot * slot_bytes).reshape(shape)


def attach(path, size):
    """Map an existing ring file (in a worker)."""
    fd = os.open(path, os.O_RDWR)
    try:
        return mmap.mmap(fd, size)
    finally:
        os.close(fd)
