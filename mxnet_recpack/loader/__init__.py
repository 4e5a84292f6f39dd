"""A training loader at the decode limit: ``RecordLoader(dataset, batch_size)``.

Worker processes read and decode each batch's items with the dataset's own ``__getitem__``
and copy them into a ring of shared batch buffers allocated once; the training process gets
each batch as a view of its slot: no per-batch shared-memory segment, no pickling of pixels, no
``stack``. Epochs are reshuffled deterministically from a seed; ranks take equal shares.

``plan`` (which positions each batch holds), ``ring`` (the shared buffers), ``worker`` (a
worker's loop), ``pool`` (the processes, watched), ``outputs`` (numpy, torch, MXNet),
``core`` (the loader). The framework-free layer above ``reader``: no torch, no mxnet imported
until a batch is made of them.
"""

from .outputs import register_output

__all__ = ["RecordLoader", "register_output"]


def __getattr__(name):
    if name == "RecordLoader":
        from .core import RecordLoader
        return RecordLoader
    raise AttributeError("module %r has no attribute %r" % (__name__, name))
