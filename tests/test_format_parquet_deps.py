"""Without pyarrow, everything but Parquet works, and Parquet says how to install it (run in
every environment: where pyarrow is installed, a child process is started without it)."""
import subprocess
import sys

import numpy as np

CHILD = r"""
import sys
sys.modules["pyarrow"] = None  # what a missing package looks like to import
import mxnet_recpack
from mxnet_recpack.errors import MissingDependencyError
from mxnet_recpack.formats import parquet
from mxnet_recpack.formats.sample import Sample
assert "pyarrow" not in [m for m in sys.modules if sys.modules[m] is not None]
for call in (lambda: parquet.ShardWriter("x.parquet", parquet.Layout()),
             lambda: parquet.scan("x.parquet"), lambda: parquet.arrow_schema(parquet.Layout())):
    try:
        call()
    except MissingDependencyError as exc:
        print(exc)
    else:
        raise SystemExit("no error")
scan = parquet.LayoutScan().add_all([Sample(1, 0, 3.0, 1, 0, b"x", None)])
print(scan.layout(), parquet.encode(Sample(1, 0, 3.0, 1, 0, b"x", None)).key)
"""


def test_parquet_without_pyarrow_names_the_extra(tmp_path):
    done = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True,
                          cwd=str(tmp_path), timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    message = ('Parquet files are read and written with pyarrow, which is not installed: pip '
               'install "mxnet_recpack[parquet]" (or: pip install "pyarrow>=15")')
    if int(np.__version__.split(".")[0]) < 2:  # pyarrow 26 would not import here
        message += ('. With numpy 1 (as MXNet 1.9 needs), pyarrow 25 is the newest that works: '
                    'pip install "pyarrow>=15,<26"')
    assert lines[:3] == [message] * 3
    assert lines[3] == "Layout(label_kind='int', recordio_header=False, class_names=None) 1"
    assert not (tmp_path / "x.parquet").exists()
