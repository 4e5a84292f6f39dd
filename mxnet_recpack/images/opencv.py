"""Loading OpenCV once, and saying what is wrong when two OpenCV packages fight over ``cv2``.

``opencv-python``, ``opencv-python-headless``, ``opencv-contrib-python`` and
``opencv-contrib-python-headless`` all install the same ``cv2`` folder; with two of them in one
environment the files of one overwrite the other's and ``cv2`` breaks in odd ways. pip has no
either-of requirement, so this package depends on the headless build and checks, the first
time ``cv2`` is needed, that no other build sits beside it (one directory listing).
"""

import logging
import os
import re

__all__ = ["load", "installed_builds", "CLASH_FIX"]

log = logging.getLogger(__name__)
_CV2 = None
_BUILD = re.compile(r"^(opencv[_-](?:contrib[_-])?python(?:[_-]headless)?)-[^-]+\.dist-info$",
                    re.I)

CLASH_FIX = ("pip uninstall -y opencv-python opencv-contrib-python opencv-python-headless "
             "opencv-contrib-python-headless, then pip install opencv-python-headless (what "
             "mxnet_recpack depends on, so pip check stays clean). If other tools need another "
             "build (GUI windows, contrib modules), install it after that one, at the same "
             "version: pip install --no-deps --force-reinstall opencv-contrib-python==VERSION "
             "(its files are then the cv2 folder's; mxnet_recpack works with any build)")


def installed_builds(site_dir, versions=False):
    """The OpenCV distributions installed in ``site_dir`` (their dist-info names), or with
    ``versions`` the set of their versions."""
    try:
        names = os.listdir(site_dir)
    except OSError:
        return set() if versions else []
    found = [m for m in map(_BUILD.match, names) if m]
    if versions:
        return {m.group(0)[len(m.group(1)) + 1:-len(".dist-info")] for m in found}
    return sorted(m.group(1).lower().replace("_", "-") for m in found)


def load():
    """The ``cv2`` module (imported once), with a warning when several builds are installed."""
    global _CV2
    if _CV2 is not None:
        return _CV2
    try:
        import cv2
    except ImportError as exc:
        raise ImportError("OpenCV (cv2) does not import (%s). It is a dependency of "
                          "mxnet_recpack: pip install opencv-python-headless. If several OpenCV "
                          "builds are installed, %s" % (exc, CLASH_FIX)) from exc
    site = os.path.dirname(os.path.dirname(os.path.abspath(cv2.__file__)))
    builds = installed_builds(site)
    # builds of one version, the wanted one installed last, are the pip-check-clean setup
    if len(builds) > 1 and len(installed_builds(site, versions=True)) > 1:
        log.warning("several OpenCV builds are installed side by side (%s); they overwrite "
                    "each other's cv2 files. To fix: %s", ", ".join(builds), CLASH_FIX)
    _CV2 = cv2
    return cv2
