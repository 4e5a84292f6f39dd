"""The README and the docs say what works: the README's blocks run as written, in order, in a
fresh folder (the blocks' own text, read from the file), and so do the docs' command lines."""
import os
import re
import subprocess
import sys

import pytest

import mxnet_recpack as rp

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(HERE, "README.md")


def readme_block(heading, path=README):
    text = open(path, encoding="utf-8").read()
    section = text.split("## " + heading, 1)[1]
    return re.search(r"```sh\n(.*?)```", section, re.S).group(1)


def doc(name):
    return os.path.join(HERE, "docs", name)


def readme_blocks():
    """Every fenced block of the README, in order: (heading, language, text)."""
    text = open(README, encoding="utf-8").read()
    blocks, heading = [], None
    for match in re.finditer(r"^## ([^\n]*)$|^```(\w+)\n(.*?)^```", text, re.S | re.M):
        if match.group(1):
            heading = match.group(1).strip()
        else:
            blocks.append((heading, match.group(2), match.group(3)))
    return blocks


#: The clone's two commands: `make test` cannot run inside the tests; the targets' existence is
#: checked by test_readme_quick_start_targets_exist, and CI runs both.
CLONE = "Quick start from a clone"


def _run_readme(tmp_path, needs):
    """Run the README's blocks in order in ``tmp_path``; a block whose Python imports a
    framework this environment lacks (torch or mxnet) is left to the environment that has it
    (each block starts from an empty folder as well as after the ones before it)."""
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    ran = []
    for heading, language, text in readme_blocks():
        if heading == CLONE:
            continue
        assert language == "sh", (heading, language)
        if set(re.findall(r"^import (torch|mxnet)\b", text, re.M)) - needs:
            continue
        result = subprocess.run(["bash", "-e", "-c", text], cwd=tmp_path, env=env,
                                capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, (heading, text, result.stdout, result.stderr)
        ran.append((heading, result.stdout + result.stderr))
    return ran


@pytest.mark.torch
def test_readme_blocks_run_in_order_with_pytorch(tmp_path, real_reader):
    """The pip user's block: from an empty folder to a verified file (a real reader agrees
    with every record) and a PyTorch training loop over it."""
    ran = _run_readme(tmp_path, {"torch"})
    assert [h for h, _ in ran] == ["First steps"]
    records = real_reader(str(tmp_path / "data_train.rec"))
    lines = open(tmp_path / "data_train.lst").read().splitlines()
    assert len(records) == len(lines) == 19  # 80% of 24 photos
    assert [label for label, _, _ in records] == [float(line.split("\t")[1]) for line in lines]
    assert all(pixels.shape == (112, 112, 3) for _, _, pixels in records)
    assert "OK, 19 records" in ran[0][1]
    assert re.findall(r"^epoch (\d) loss \d", ran[0][1], re.M) == ["0", "1", "2"]


@pytest.mark.mxnet
def test_readme_blocks_run_in_order_with_mxnet(tmp_path, real_reader):
    """The Gluon user's block, from an empty folder: Gluon's transforms into a file that
    MXNet's own readers train from."""
    ran = _run_readme(tmp_path, {"mxnet"})
    assert [h for h, _ in ran] == ["With MXNet and Gluon"] and "one epoch, loss" in ran[0][1]
    records = real_reader(str(tmp_path / "gluon_train.rec"))
    assert len(records) == 19 and min(min(p.shape[:2]) for _, _, p in records) == 96


def test_the_blocks_also_run_one_after_the_other(tmp_path):
    """The sample photos of a second block are kept: a reader who runs both blocks in one
    folder is not stopped by the second."""
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    for _ in range(2):
        done = subprocess.run("python -m mxnet_recpack.samples photos", shell=True,
                              cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
    assert "already holds these 24 photos: kept" in done.stdout
    (tmp_path / "photos" / "class_0" / os.listdir(tmp_path / "photos" / "class_0")[0]) \
        .write_bytes(b"changed")
    changed = subprocess.run("python -m mxnet_recpack.samples photos", shell=True,
                             cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert changed.returncode == 2 and "does not hold these photos" in changed.stderr


def test_every_readme_block_is_run_somewhere():
    """Each block runs in one of the two tests above (or is the clone's make commands)."""
    for heading, language, text in readme_blocks():
        if heading == CLONE:
            assert text.split()[:2] == ["make", "demo"], text
            continue
        imports = set(re.findall(r"^import (torch|mxnet)\b", text, re.M))
        assert language == "sh" and len(imports) == 1, (heading, text)


def _long_description():
    """What setup.py gives the package index: its ``long_description()``, run from its source
    (setuptools itself is not needed for it, and a new Python's venv may not have it)."""
    import ast
    from pathlib import Path
    tree = ast.parse(open(os.path.join(HERE, "setup.py")).read())
    keep = [n for n in tree.body if (isinstance(n, ast.FunctionDef) and
                                      n.name == "long_description") or
            (isinstance(n, ast.Assign) and [t.id for t in n.targets] == ["PROJECT_URL"])]
    assert len(keep) == 2, "setup.py has no PROJECT_URL and long_description()"
    space = {"re": re, "HERE": Path(HERE)}
    exec(compile(ast.Module(body=keep, type_ignores=[]), "setup.py", "exec"), space)
    return space["long_description"]()


def test_readme_links_resolve_and_the_package_index_gets_absolute_ones():
    text = open(README, encoding="utf-8").read()
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text)
    assert len(links) >= 10
    for link in links:
        if not link.startswith("https://"):
            assert os.path.exists(os.path.join(HERE, link)), link
    described = re.findall(r"\]\(([^)]+)\)", _long_description())
    assert len(described) == len(re.findall(r"\]\(([^)]+)\)", text))
    assert all(link.startswith("https://") for link in described), described


def test_the_command_line_doc_block_runs_as_written(tmp_path, real_reader):
    rp.samples.make_image_folder(str(tmp_path / "images"), classes=2, per_class=6,
                                 long_side=(300, 400))
    (tmp_path / "data").mkdir()
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    ran = 0
    for line in readme_block("Command line", doc("usage.md")).splitlines():
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
        assert command in readme_block(CLONE)
        assert re.search(r"^%s:" % command.split()[1], makefile, re.M)


def test_the_existing_files_doc_block_runs_as_written(tmp_path, real_reader):
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
    for line in re.search(r"```sh\n(.*?)```", open(doc("existing-files.md")).read(),
                          re.S).group(1).splitlines():
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
