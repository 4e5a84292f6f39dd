"""Look inside a record file: what it holds (``summary``: :func:`inspect_file`), what its images
look like (``sheet``: :func:`contact_sheet`), and the images back out as files (``extract``).

A front door: may import ``format``, ``storage``, ``images`` and ``sources`` (record sets,
InsightFace's layout); never mxnet.
"""

from .extract import extract
from .sheet import SHEET_GAP, SHEET_LABEL_HEIGHT, contact_sheet, format_label
from .summary import ENCODING_NAMES, inspect_file

__all__ = ["inspect_file", "contact_sheet", "extract", "format_label", "ENCODING_NAMES",
           "SHEET_GAP", "SHEET_LABEL_HEIGHT"]
