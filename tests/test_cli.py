"""The CLI owns the terminal: a progress bar on a TTY, a summary line, --quiet, clean errors."""
import os
import pty
import subprocess
import sys

import mxnet_recpack as rp
from helpers import recpack_cmd, write_lst


def run_on_terminal(cmd, cwd):
    """Run ``cmd`` with stdout and stderr on a pseudo-terminal; return (exit code, output)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=slave, stderr=slave, close_fds=True)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    return proc.wait(), b"".join(chunks).decode("utf-8", "replace")


def test_progress_bar_on_a_terminal_and_summary_line(tmp_path):
    files = rp.samples.make_image_folder(str(tmp_path / "img"), classes=1, per_class=40,
                                         long_side=(60, 90))
    write_lst(tmp_path / "d.lst", [(i, 0, f) for i, f in enumerate(files)] +
              [(99, 0, "gone.jpg")])
    code, out = run_on_terminal(recpack_cmd("im2rec", "--batch-size", "4", tmp_path / "d",
                                            tmp_path / "img"), tmp_path)
    assert code == 0, out
    assert "d.lst:" in out and "41/41" in out and "img/s" in out  # tqdm's bar
    assert "d.rec: 40 records" in out and "images/s" in out  # the summary line
    assert "skipped 1 bad image(s), listed in" in out and "d.failures.jsonl" in out


def test_quiet_prints_nothing_and_no_bar_off_a_terminal(tmp_path):
    files = rp.samples.make_image_folder(str(tmp_path / "img"), classes=1, per_class=5,
                                         long_side=(60, 90))
    write_lst(tmp_path / "d.lst", [(i, 0, f) for i, f in enumerate(files)])
    code, out = run_on_terminal(recpack_cmd("im2rec", "-q", tmp_path / "d", tmp_path / "img"),
                                tmp_path)
    assert code == 0 and out.strip() == ""
    result = subprocess.run(recpack_cmd("im2rec", tmp_path / "d", tmp_path / "img"),
                            capture_output=True, text=True)
    assert result.returncode == 0 and "|" not in result.stderr  # no bar when piped
    assert "d.rec: 5 records" in result.stdout


def test_errors_are_one_line_with_a_non_zero_status(tmp_path):
    result = subprocess.run(recpack_cmd("verify", tmp_path / "missing.rec"), capture_output=True,
                            text=True)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("recpack: error:")
    assert "Traceback" not in result.stderr
    result = subprocess.run([sys.executable, "-m", "mxnet_recpack", "--version"],
                            capture_output=True, text=True)
    assert result.returncode == 0 and rp.__version__ in result.stdout
