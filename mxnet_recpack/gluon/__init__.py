"""The Gluon layer: the only place that imports mxnet.

It owns the Gluon datasets (``datasets``: ``ImageListDataset``, ``ArrayDataset``), the fast paths
that run Gluon transforms as the identical OpenCV calls (``fastpath``), every read of Gluon's
private internals (``internals``), the adapter it hands the pipeline (``adapter``) and the
``Dataset.to_recordio`` method (``patch``). It may import anything in the package; nothing
else imports it, except the package's ``__init__`` (which calls :func:`install`).

Importing this package does not import mxnet: :func:`install` only registers the adapter and
the import hook, and the Gluon names import mxnet when first used. Without MXNet they raise
:class:`~mxnet_recpack.errors.MissingDependencyError` saying how to install it.
"""

import importlib
import sys

from ..errors import MissingDependencyError
from ..loader.outputs import register_output
from ..pipeline import adapters
from .adapter import GluonAdapter
from .patch import install_hook

__all__ = ["install", "gluon_name", "require_mxnet", "INSTALL_HINT"]

_WITHOUT = ("Without MXNet, mxnet_recpack.ImageList, RecordFileWriter.write_dataset, "
            "im2rec(...) with plain-function transforms, RecordDataset and the recpack command "
            "all work")
if sys.version_info < (3, 12):
    INSTALL_HINT = ("pip install 'mxnet_recpack[mxnet]' (MXNet 1.9.1 and numpy<1.24), or keep "
                    "the MXNet build you have (mxnet-cu112, ...): any build works. " + _WITHOUT)
else:  # MXNet 1.9.1, the last release, has wheels for Python 3.8-3.11 only
    INSTALL_HINT = ("MXNet has no release for Python %d.%d (MXNet 1.9.1, the last one, needs "
                    "Python 3.8-3.11 and numpy<1.24): for the Gluon pieces, make an environment "
                    "with Python 3.11 (python3.11 -m venv env; env/bin/pip install "
                    "'mxnet_recpack[mxnet]'). %s" % (sys.version_info[:2] + (_WITHOUT,)))


def install():
    """Register the Gluon adapter, give Gluon's ``Dataset`` its ``to_recordio``, and let
    ``RecordLoader(..., output="mxnet")`` make NDArrays."""
    adapters.register(GluonAdapter())
    install_hook()
    register_output("mxnet", _ndarrays)


def _ndarrays(images, labels):
    """A loader's batch as MXNet NDArrays (copies: MXNet has no view of foreign memory)."""
    mx = require_mxnet('RecordLoader(output="mxnet")')

    def nd(x):
        if isinstance(x, list):
            return [nd(v) for v in x]
        return mx.nd.array(x, dtype=x.dtype) if hasattr(x, "dtype") else x
    return nd(images), nd(labels)


def require_mxnet(what):
    """Import mxnet for ``what``, or raise :class:`MissingDependencyError` with the fix."""
    try:
        return importlib.import_module("mxnet")
    except Exception as exc:  # noqa: BLE001 - ImportError, or mxnet 1.9 on numpy 2 (np.bool)
        raise MissingDependencyError("%s needs MXNet (Gluon), which %s (%s: %s). Install it: %s"
                                     % (what, "is not installed" if isinstance(
                                         exc, ModuleNotFoundError) else "does not import",
                                        type(exc).__name__, exc, INSTALL_HINT)) from exc


def _unavailable(name, error):
    """A stand-in for a Gluon class when MXNet is missing: using it raises ``error``."""
    def refuse(*args, **kwargs):
        raise error
    return type(name, (), {"__new__": refuse, "__doc__": "Needs MXNet: %s" % error})


def gluon_name(name):
    """``ImageListDataset`` / ``ArrayDataset``: the class, or a stand-in that raises the
    missing-MXNet error when used (so ``from mxnet_recpack import *`` works without it)."""
    try:
        require_mxnet(name)
    except MissingDependencyError as exc:
        return _unavailable(name, exc)
    return getattr(importlib.import_module(".datasets", __name__), name)
