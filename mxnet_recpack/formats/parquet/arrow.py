"""pyarrow, imported when a Parquet file is first written or read (never at package import).

A missing (or broken) pyarrow raises :class:`~mxnet_recpack.errors.MissingDependencyError`
naming the extra that installs it.
"""

import numpy as np

from ...errors import MissingDependencyError

__all__ = ["pyarrow", "INSTALL"]

#: How to install what this format needs.
INSTALL = 'pip install "mxnet_recpack[parquet]" (or: pip install "pyarrow>=15")'

#: pyarrow 26 and newer need numpy 2; MXNet 1.9 needs numpy < 1.24.
_NUMPY1_HINT = ('. With numpy 1 (as MXNet 1.9 needs), pyarrow 25 is the newest that works: '
                'pip install "pyarrow>=15,<26"')
_MODULES = []


def pyarrow():
    """``(pyarrow, pyarrow.parquet)``, or :class:`MissingDependencyError` saying how to get
    them."""
    if not _MODULES:
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError as exc:
            missing = isinstance(exc, ModuleNotFoundError) and (exc.name or "").startswith(
                "pyarrow")
            raise MissingDependencyError(
                "Parquet files are read and written with pyarrow, which %s: %s%s"
                % ("is not installed" if missing else "does not import (%s)" % exc, INSTALL,
                   _NUMPY1_HINT if int(np.__version__.split(".")[0]) < 2 else "")
            ) from exc
        version = tuple(int(p) for p in pa.__version__.split(".")[:1])
        if version < (15,):
            raise MissingDependencyError(
                "Parquet files need pyarrow 15 or newer (page checksums); pyarrow %s is "
                "installed: %s" % (pa.__version__, INSTALL))
        _MODULES[:] = [pa, pq]
    return _MODULES[0], _MODULES[1]
