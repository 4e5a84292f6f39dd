"""The PyTorch tutorial (tutorials/04_recordio_to_pytorch.ipynb) runs top to bottom in the
numpy-2 environment (torch, webdataset, datasets; no MXNet), offline, on CPU: each of its three
training loops (RecordDataset, webdataset shards, Parquet through datasets) saw every record of
the file in an epoch, once, with the label its list gave it, and converting the shards back gave
the original file."""
import os
import re

import pytest

try:
    from test_tutorials import TUTORIALS, printed_text, python3_kernel, run_notebook  # noqa: F401
except ImportError as exc:  # nbclient, nbformat, ipykernel: the test-notebooks extra
    raise ImportError("the tutorial tests need the test-notebooks extra in this environment too "
                      "(pip install -e '.[test-notebooks]'): %s" % exc) from exc

pytestmark = [pytest.mark.formats, pytest.mark.torch, pytest.mark.notebooks]

NOTEBOOK = os.path.join(TUTORIALS, "04_recordio_to_pytorch.ipynb")
LOOP = re.compile(r"^(\w+): (\d+) samples an epoch, (\d+) distinct records of (\d+); labels as in "
                  r"the list: (True|False)$", re.M)


def test_the_pytorch_tutorial_trains_from_every_reader_on_every_record(tmp_path, python3_kernel):
    text = printed_text(run_notebook(NOTEBOOK, tmp_path / "run", python3_kernel))
    loops = {m.group(1): m.groups()[1:] for m in LOOP.finditer(text)}
    assert sorted(loops) == ["Parquet", "RecordDataset", "webdataset"], text
    for name, (samples, distinct, records, labels_match) in loops.items():
        assert samples == distinct == records == "48" and labels_match == "True", (name, text)
    assert "holds the record's bytes: True" in text
    assert "gives back data.rec and data.idx byte for byte: True" in text
    losses = re.findall(r"^mean loss per epoch: (.*)$", text, re.M)
    assert len(losses) == 3 and all(v.replace(".", "").isdigit()
                                    for line in losses for v in line.split()), losses
