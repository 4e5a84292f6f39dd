"""The output lock lives in :mod:`mxnet_recpack.storage.lock` (a lock file on a local file
system is storage; the remote commit's readers take it too); kept here for the pipeline's
imports."""

from ..storage.lock import OutputLock, lock_path_for

__all__ = ["OutputLock", "lock_path_for"]
