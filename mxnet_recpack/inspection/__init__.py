"""Look inside a record file: what it holds (``summary``: :func:`inspect_file`), what its images
look like (``sheet``: :func:`contact_sheet`), the images back out as files (``extract``), and a
web page on this machine to look through it (``browse``: :class:`~.browse.Browser`, served by
:class:`~.browse.BrowseServer`; imported on use).

A front door: may import ``format``, ``storage``, ``images`` and ``sources`` (record sets,
InsightFace's layout); never mxnet.
"""

from .extract import extract
from .sheet import SHEET_GAP, SHEET_LABEL_HEIGHT, contact_sheet, format_label
from .summary import ENCODING_NAMES, inspect_file

__all__ = ["inspect_file", "contact_sheet", "extract", "format_label", "ENCODING_NAMES",
           "SHEET_GAP", "SHEET_LABEL_HEIGHT"]
