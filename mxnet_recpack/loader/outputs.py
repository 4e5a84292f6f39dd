"""What a loader's batches are made of: numpy arrays, torch tensors or MXNet NDArrays.

A table of converters, ``(images, labels) -> batch``. numpy and torch are here (torch is
imported when first used); MXNet's is registered by the Gluon layer, the only one that imports
mxnet.
"""

__all__ = ["register_output", "converter", "OUTPUTS"]


def _numpy(images, labels):
    return images, labels


def _torch(images, labels):
    import numpy as np
    import torch

    def tensor(x):
        if isinstance(x, np.ndarray):
            return torch.from_numpy(x)
        if isinstance(x, list):
            return [tensor(v) for v in x]
        return x
    return tensor(images), tensor(labels)


OUTPUTS = {"numpy": _numpy, "torch": _torch}


def register_output(name, convert):
    """Add an output kind (``convert(images, labels) -> batch``)."""
    OUTPUTS[name] = convert


def converter(name):
    from ..errors import OptionError
    try:
        return OUTPUTS[name]
    except (KeyError, TypeError):
        raise OptionError("output = %r is not valid; expected one of %s"
                          % (name, ", ".join(map(repr, sorted(OUTPUTS))))) from None
