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


def test_readme_existing_files_block_runs_as_written(tmp_path, real_reader):
    from helpers import noise_jpegs
    images = noise_jpegs(12)
    with rp.RecordFileWriter(str(tmp_path / "a.rec")) as w:
        for k in range(6):
            w.write(images[k], float(10 + k), key=k)
    with rp.RecordFileWriter(str(tmp_path / "b.rec")) as w:
        for k in range(6, 12):
            w.write(images[k], float(3 + 4 * (k % 2)), key=k)
    (tmp_path / "val.txt").write_text("1\n2\n")
    (tmp_path / "fixed.lst").write_text("".join("%d\t%d\tx.jpg\n" % (k, k % 2) for k in range(12)))
    (tmp_path / "data").mkdir()
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    ran = 0
    for line in readme_block("Working with existing files").splitlines():
        command = line.split("#", 1)[0].strip()
        if command:
            result = subprocess.run(command, shell=True, cwd=tmp_path, env=env,
                                    capture_output=True, text=True)
            assert result.returncode == 0, (command, result.stdout, result.stderr)
            ran += 1
    assert ran == 10
    assert [r[0] for r in real_reader(str(tmp_path / "cats.rec"))] == [3.0, 7.0] * 3
    assert [r[0] for r in real_reader(str(tmp_path / "fixed.rec"))] == [0.0, 1.0] * 6
    assert len(real_reader(str(tmp_path / "data" / "all_val.rec"))) == 2
    assert (tmp_path / "all.keys.tsv").exists()
