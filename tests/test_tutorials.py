"""Every tutorial notebook runs top to bottom (offline, CPU) in a scratch folder; the training
tutorial's validation accuracy is above the level its text states. The notebooks that need
PyTorch and the formats' libraries run in the numpy-2 environment (test_tutorial_pytorch.py)."""
import glob
import json
import os
import re
import shutil
import sys
import time

import nbformat
import pytest
from nbclient import NotebookClient

TUTORIALS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tutorials")
pytestmark = [pytest.mark.mxnet, pytest.mark.notebooks]

NOTEBOOKS = sorted(glob.glob(os.path.join(TUTORIALS, "*.ipynb")))
#: Run by test_tutorial_pytorch.py where torch, webdataset and datasets are (not beside MXNet).
NUMPY2_NOTEBOOKS = ("04_recordio_to_pytorch.ipynb",)
MXNET_NOTEBOOKS = [p for p in NOTEBOOKS if os.path.basename(p) not in NUMPY2_NOTEBOOKS]

#: Notebook name -> (regex over its printed output, the least accuracy the test accepts).
ACCURACY = {
    "02_gluon_dataset_to_training.ipynb": (r"^validation accuracy: ([0-9.]+)", 0.80),
}


@pytest.fixture
def python3_kernel(tmp_path_factory, monkeypatch):
    """A ``python3`` kernelspec that runs this very interpreter (the venv with the package)."""
    from jupyter_client.kernelspec import KernelSpecManager
    root = tmp_path_factory.mktemp("jupyter")
    spec_dir = root / "kernels" / "python3"
    spec_dir.mkdir(parents=True)
    (spec_dir / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (tests)", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(root))
    assert KernelSpecManager().get_kernel_spec("python3").argv[0] == sys.executable
    return "python3"


def printed_text(nb):
    return "".join(out.get("text", "") for cell in nb.cells if cell.cell_type == "code"
                   for out in cell.get("outputs", []) if out.output_type == "stream")


def test_notebooks_are_found_and_saved_without_outputs():
    names = [os.path.basename(p) for p in NOTEBOOKS]
    assert "01_quick_start.ipynb" in names and "02_gluon_dataset_to_training.ipynb" in names
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        assert nb.metadata.kernelspec.name == "python3"
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, path


def run_notebook(path, work, kernel):
    """Run a copy of the notebook at ``path`` in the folder ``work``; the executed notebook.
    Fails when a cell raised or when anything was written into the repository's tutorials."""
    before = sorted(os.listdir(TUTORIALS))
    work.mkdir()
    copy = shutil.copy(path, work)
    nb = nbformat.read(copy, as_version=4)
    t0 = time.monotonic()
    NotebookClient(nb, timeout=300, kernel_name=kernel,
                   resources={"metadata": {"path": str(work)}}).execute()
    print("%s ran in %.1f s" % (os.path.basename(path), time.monotonic() - t0))
    errors = [out for cell in nb.cells for out in cell.get("outputs", [])
              if out.output_type == "error"]
    assert not errors
    assert sorted(os.listdir(TUTORIALS)) == before  # nothing written into the repository
    return nb


@pytest.mark.parametrize("path", MXNET_NOTEBOOKS, ids=os.path.basename)
def test_notebook_runs(path, tmp_path, python3_kernel):
    nb = run_notebook(path, tmp_path / "run", python3_kernel)
    check = ACCURACY.get(os.path.basename(path))
    if check is not None:
        pattern, least = check
        found = re.findall(pattern, printed_text(nb), flags=re.MULTILINE)
        assert found, "the notebook printed no line matching %r" % pattern
        assert float(found[-1]) >= least
