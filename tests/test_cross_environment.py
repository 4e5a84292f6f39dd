"""The same bytes in every environment: the MXNet environment writes the golden files and
checks them with MXNet's own readers; the environments without MXNet (numpy 2, newer Pythons)
write them again and must get the same bytes. ``make test`` runs them in that order, sharing
``RECPACK_GOLDEN_DIR``."""
import io
import os

import numpy as np
import pytest

from conftest import GOLDEN
from golden import CLI_CASES, write_golden
from helpers import read

pytestmark = pytest.mark.crossenv


@pytest.mark.mxnet
def test_the_mxnet_environment_writes_the_golden_files_and_mxnet_reads_them():
    import mxnet as mx
    assert not os.listdir(GOLDEN), "%s must start empty (make test empties it)" % GOLDEN
    names = write_golden(GOLDEN)
    recs = [n for n in names if n.endswith(".rec")]
    assert len(recs) == len(CLI_CASES) + 1 + 2  # parts: 2 files; tensors; by hand
    for name in recs:
        rec = os.path.join(GOLDEN, name)
        r = mx.recordio.MXIndexedRecordIO(rec[:-4] + ".idx", rec, "r")
        assert r.keys, name
        for key in r.keys:
            header, body = mx.recordio.unpack(r.read_idx(key))
            assert header.id == key
            if name.startswith("tensors"):
                assert np.load(io.BytesIO(body)).shape == (3, 8, 8)
            elif key != 9:
                assert mx.image.imdecode(body).shape[2] == 3
        r.close()
    with open(os.path.join(GOLDEN, "MANIFEST"), "w") as f:
        f.write("\n".join(names) + "\n")


@pytest.mark.nomx
def test_the_same_bytes_as_the_mxnet_environment_wrote(tmp_path):
    manifest = os.path.join(GOLDEN, "MANIFEST")
    assert os.path.exists(manifest), ("%s has no files from the MXNet environment: run `make "
                                      "test`, which runs that environment first" % GOLDEN)
    expected = read(manifest).decode().split()
    names = write_golden(str(tmp_path))
    assert names == expected
    different = [n for n in names if read(tmp_path / n) != read(os.path.join(GOLDEN, n))]
    assert not different, "written differently here than with MXNet: %s" % different
