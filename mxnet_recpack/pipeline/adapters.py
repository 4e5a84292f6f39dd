"""Framework adapters: how the pipeline drives datasets and transforms of a framework it never
imports.

A framework layer (``mxnet_recpack.gluon``) registers an :class:`Adapter` when the package is
imported; the pipeline only asks this registry. An adapter decides by ``isinstance`` against
modules already in ``sys.modules``, so asking never imports the framework: a Gluon dataset can
exist only once mxnet is imported.
"""

__all__ = ["Adapter", "register", "for_dataset", "for_transform"]

_ADAPTERS = []


class Adapter:
    """What the pipeline needs from a framework. Every method has a neutral default."""

    #: Shown in messages ("the Gluon DataLoader", ...).
    name = "plain"

    def owns(self, dataset):
        """True when ``dataset`` is this framework's (its executor and wrappers apply)."""
        return False

    def unwrap(self, dataset, i):
        """``(innermost dataset, its index)`` behind the framework's lazy wrappers for item
        ``i`` (keys and failure sources come from the innermost dataset)."""
        return dataset, i

    def item_getter(self, dataset):
        """A faster ``i -> (image, label)`` than ``dataset[i]`` giving the same stored bytes
        (numpy, no framework arrays), or None."""
        return None

    def worker_setup(self):
        """A picklable callable run first in every worker process (framework state), or None."""
        return None

    def owns_transform(self, fn):
        """True when ``fn`` is this framework's transform (it wants framework arrays)."""
        return False

    def transform_source(self, source, fn):
        """``source`` (an :class:`~mxnet_recpack.sources.image_list.ImageList`) with ``fn``
        applied to every image, as a dataset of this framework."""
        raise NotImplementedError

    def parts_to_pickle(self, dataset):
        """``(description, object)`` pairs that worker processes receive by pickle, innermost
        first, to name the one that cannot be pickled (a dataset may list its own parts with
        a ``pickle_parts()`` method)."""
        own = getattr(dataset, "pickle_parts", None)
        return (own() if callable(own) else []) + [
            ("the dataset %s" % type(dataset).__name__, dataset)]


def register(adapter):
    """Add a framework adapter (once)."""
    if all(type(a) is not type(adapter) for a in _ADAPTERS):
        _ADAPTERS.append(adapter)


_PLAIN = Adapter()


def for_dataset(dataset):
    """The adapter that owns ``dataset``, or the plain one."""
    for adapter in _ADAPTERS:
        if adapter.owns(dataset):
            return adapter
    return _PLAIN


def for_transform(fn):
    """The adapter whose transform ``fn`` is, or None (a plain callable on numpy images)."""
    for adapter in _ADAPTERS:
        if adapter.owns_transform(fn):
            return adapter
    return None
