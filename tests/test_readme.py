"""The README's commands are the ones that work: its command-line block runs verbatim here."""
import os
import re
import subprocess
import sys

import mxnet_recpack as rp

README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")


def readme_block(heading):
    text = open(README, encoding="utf-8").read()
    section = text.split("## " + heading, 1)[1]
    return re.search(r"```sh\n(.*?)```", section, re.S).group(1)


def test_readme_command_line_block_runs_as_written(tmp_path, real_reader):
    rp.samples.make_image_folder(str(tmp_path / "images"), classes=2, per_class=6,
                                 long_side=(300, 400))
    (tmp_path / "data").mkdir()
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    ran = 0
    for line in readme_block("Command line").splitlines():
        command = line.split("#", 1)[0].strip()
        if not command:
            continue
        result = subprocess.run(command, shell=True, cwd=tmp_path, env=env,
                                capture_output=True, text=True)
        assert result.returncode == 0, (command, result.stdout, result.stderr)
        ran += 1
    assert ran >= 8
    records = real_reader(str(tmp_path / "data" / "train_train.rec"))
    assert len(records) == 10  # 90% of 12 photos
    assert {label for label, _, _ in records} == {0.0, 1.0}
    assert (tmp_path / "sheet.png").stat().st_size > 0
    assert (tmp_path / "extracted").is_dir()


def test_readme_quick_start_targets_exist():
    makefile = open(os.path.join(os.path.dirname(README), "Makefile")).read()
    for command in ("make demo", "make test"):
        assert command in readme_block("Quick start")
        assert re.search(r"^%s:" % command.split()[1], makefile, re.M)
