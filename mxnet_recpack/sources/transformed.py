"""A source's images passed through a plain Python callable (not a framework's transform).

The callable receives each image as a numpy H x W x C RGB array (H x W x 1 for gray), as
:meth:`~mxnet_recpack.sources.image_list.ImageList.read_image` gives it, and returns the image
to store (an array, or encoded bytes). Keys and sources are the underlying source's.
"""

__all__ = ["TransformedImages"]


class TransformedImages:
    """``(transform(image), label)`` for every item of ``source``.

    Parameters
    ----------
    source : ImageList
        Anything with ``__getitem__`` giving ``(numpy RGB image, label)``; its
        ``record_keys`` and ``record_source`` are kept.
    transform : callable
        ``image -> image``. Under the ``spawn`` start method it must be picklable (defined
        at module level) when several workers run it.
    """

    def __init__(self, source, transform):
        self.source = source
        self.transform = transform

    @property
    def record_keys(self):
        return getattr(self.source, "record_keys", None)

    def record_source(self, i):
        return self.source.record_source(i)

    def __len__(self):
        return len(self.source)

    def pickle_parts(self):
        """What worker processes receive by pickle, to name the part that cannot be."""
        return [("the dataset %s" % type(self.source).__name__, self.source),
                ("the transform %r" % (self.transform,), self.transform)]

    def __getitem__(self, i):
        image, label = self.source[i]
        return self.transform(image), label
