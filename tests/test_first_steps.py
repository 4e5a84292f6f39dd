"""What a newcomer meets first: each mistake answered with its real cause and the fix (the
message checked, not only the exit status), help that says what each flag does, the per-format
image defaults, a demo that runs from a plain install, and a quiet end in a closed pipe."""
import os
import re
import shlex
import signal
import subprocess
import sys

import numpy as np
import pytest

import mxnet_recpack as rp
from mxnet_recpack import RecordDataset
from mxnet_recpack.cli import build_parser
from mxnet_recpack.errors import ListFormatError

from helpers import recpack_cmd, write_lst

pytestmark = pytest.mark.timeout(300)


def run(*args, cwd=None, **kwargs):
    return subprocess.run(recpack_cmd(*args), capture_output=True, text=True, timeout=120,
                          cwd=cwd, **kwargs)


@pytest.fixture
def folder(tmp_path):
    """A fresh working folder holding an image folder 'sp' of class subfolders (no list)."""
    from mxnet_recpack.samples import make_image_folder
    make_image_folder(str(tmp_path / "sp"), classes=2, per_class=3, long_side=(80, 120))
    return tmp_path


def test_a_prefix_that_is_the_image_folder_says_so_and_its_fix_works(folder):
    """`recpack im2rec sp sp`: im2rec.py looks for the lists inside a folder prefix; the error
    says that, and the two commands it offers make and pack a list."""
    result = run("im2rec", "sp", "sp", cwd=folder)
    assert result.returncode == 1
    err = result.stderr
    assert "the prefix sp is a folder" in err and "sp/*.lst" in err, err
    commands = re.findall(r"`(recpack [^`]+)`", err)
    assert len(commands) == 2 and "--list" in commands[0], err
    for command in commands:
        done = run(*shlex.split(command)[1:], cwd=folder)
        assert done.returncode == 0, done.stderr
    assert len(RecordDataset(str(folder / "sp_data.rec"))) == 6


def test_no_list_names_the_command_that_makes_one(tmp_path):
    result = run("im2rec", tmp_path / "train", tmp_path)
    assert result.returncode == 1
    assert "no list file train*.lst in %s: make one first with `recpack im2rec --list " \
           "[--recursive] %s %s`" % (tmp_path, tmp_path / "train", tmp_path) in result.stderr


def test_a_missing_image_folder_is_one_error_before_any_image(tmp_path, image_folder):
    _, _, rows = image_folder
    lst = write_lst(tmp_path / "d.lst", rows)
    result = run("im2rec", tmp_path / "d", tmp_path / "nowhere")
    assert result.returncode == 1
    assert "the image folder %s does not exist" % (tmp_path / "nowhere") in result.stderr
    assert "WARNING" not in result.stderr and "skipped" not in result.stderr, result.stderr
    with pytest.raises(FileNotFoundError, match="the image folder .* does not exist"):
        rp.im2rec(lst, dataset_params={"root": str(tmp_path / "nowhere")})
    assert os.listdir(tmp_path) == ["d.lst"]


def test_an_empty_list_is_an_error_unless_asked_for(tmp_path, image_folder):
    root, _, _ = image_folder
    made = run("im2rec", "--list", tmp_path / "flat", root)  # images are in subfolders
    assert made.returncode == 0
    assert "its subfolders have images: list them with --recursive" in made.stderr
    result = run("im2rec", tmp_path / "flat", root)
    assert result.returncode == 1
    assert "flat.lst has no images listed: nothing to pack" in result.stderr
    assert "--allow-empty" in result.stderr and "--recursive" in result.stderr
    assert not (tmp_path / "flat.rec").exists()
    with pytest.raises(ListFormatError, match="allow_empty=True"):
        rp.im2rec(str(tmp_path / "flat.lst"), dataset_params={"root": root})
    allowed = run("im2rec", "--allow-empty", tmp_path / "flat", root)
    assert allowed.returncode == 0, allowed.stderr
    assert (tmp_path / "flat.rec").stat().st_size == 0 and len(
        RecordDataset(str(tmp_path / "flat.rec"))) == 0


def test_resize_with_two_numbers_points_to_the_exact_size(tmp_path):
    result = run("im2rec", "--resize", "256,256", tmp_path / "p", tmp_path)
    assert result.returncode == 2
    assert "'256,256' is not a number of pixels" in result.stderr
    assert "resize=(width, height)" in result.stderr and "--center-crop" in result.stderr


def test_a_missing_file_or_a_folder_is_not_told_to_rebuild_its_index(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file") as missing:
        RecordDataset(str(tmp_path / "nope.rec"))
    with pytest.raises(OSError, match="is a directory, not a regular file") as folder:
        RecordDataset(str(tmp_path))
    for exc in (missing, folder):
        assert "recpack index" not in str(exc.value)


def test_relabel_with_a_missing_list_names_it_and_how_to_make_one(tmp_path, image_folder):
    _, lst, _ = image_folder
    rp.im2rec(lst, dataset_params={"root": os.path.dirname(lst), "pass_through": True},
              output_path=str(tmp_path / "a"))
    result = run("relabel", "--list", "images", tmp_path / "a.rec", tmp_path / "b.rec",
                 cwd=tmp_path)
    assert result.returncode == 1
    assert "list file images not found; make one with `recpack im2rec --list" in result.stderr


@pytest.mark.parametrize("pixels, advice", [
    (np.full((2, 8, 8, 3), 200.0), "convert with image.astype(np.uint8)"),
    (np.full((2, 8, 8, 3), 200.4), "np.rint(image).astype(np.uint8)"),
    (np.full((2, 8, 8, 3), 0.5), "(image * 255).round().astype(np.uint8)"),
    (np.full((2, 8, 8, 3), 4000, np.uint16), "16-bit pixels: store them with encoding='.png'"),
    (np.full((2, 8, 8, 3), -1.5, np.float32), "Float tensors (after ToTensor/Normalize)"),
])
def test_images_of_another_type_are_told_how_to_become_pixels(tmp_path, pixels, advice):
    with pytest.raises(rp.errors.TransformError) as exc:
        rp.RecordFileWriter(str(tmp_path / "f.rec")).__enter__().write_dataset(
            list(zip(pixels, [0, 1])))
    assert advice in str(exc.value)
    assert not (tmp_path / "f.rec").exists()


def test_a_closed_pipe_ends_quietly_with_sigpipes_status(tmp_path, image_folder):
    """`recpack inspect ... | head`: no "Broken pipe" error, the status of a tool that SIGPIPE
    stopped (141), as `cat` gives."""
    _, lst, _ = image_folder
    rec = rp.im2rec(lst, dataset_params={"root": os.path.dirname(lst), "pass_through": True},
                    output_path=str(tmp_path / "a"))
    r, w = os.pipe()
    os.close(r)  # the reader is gone before the first line
    proc = subprocess.run(recpack_cmd("inspect", rec), stdout=w, stderr=subprocess.PIPE,
                          text=True, timeout=120)
    os.close(w)
    assert proc.returncode == 128 + signal.SIGPIPE
    assert proc.stderr == "", proc.stderr


def test_verify_checks_a_file_without_its_index_by_scanning(tmp_path, image_folder):
    """im2rec.cc and MXRecordIO write .rec files without .idx: they are valid."""
    _, lst, _ = image_folder
    rec = rp.im2rec(lst, dataset_params={"root": os.path.dirname(lst), "pass_through": True},
                    output_path=str(tmp_path / "a"))
    os.remove(tmp_path / "a.idx")
    result = run("verify", rec)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no index file %s: checked by scanning the records" % (tmp_path / "a.idx") \
        in result.stdout
    assert "OK, 18 records" in result.stdout
    named = run("verify", rec, "--idx", tmp_path / "a.idx")  # an index asked for is missed
    assert named.returncode == 1 and "no index file" in named.stdout


def _subcommands():
    parser = build_parser()
    return parser._subparsers._group_actions[0].choices


def test_every_negated_flag_says_what_the_flag_does():
    """A `store_false` flag's help is the flag's: it says what giving it does and what the
    default is, and never shows argparse's "(default: True)" (the option's value, not the
    flag's)."""
    seen = 0
    for name, sub in _subcommands().items():
        for action in sub._actions:
            if not action.option_strings or action.nargs != 0 or action.help is None:
                continue
            text = sub._get_formatter()._expand_help(action) if "%" in action.help else \
                action.help
            shown = _shown_help(sub, action)
            assert "(default: True)" not in shown and "(default: False)" not in shown, \
                (name, action.option_strings, shown)
            if isinstance(action, type(sub._option_string_actions.get("--help"))):
                continue
            if action.option_strings[0].startswith("--no-"):
                seen += 1
                assert "default:" in text, (name, action.option_strings, text)
                assert "(CLI:" not in text, (name, action.option_strings, text)
    assert seen >= 10  # --no-shuffle, --no-overwrite in every command that writes


def _shown_help(sub, action):
    """The help text of ``action`` as ``--help`` prints it (argparse's formatter applied)."""
    formatter = sub._get_formatter()
    return formatter._get_help_string(action) if hasattr(formatter, "_get_help_string") \
        else action.help


def test_no_help_offers_a_value_its_flag_refuses():
    """An encoding or choice named in a flag's help is one the flag accepts (or the help says
    it is for the Python API)."""
    for name, sub in _subcommands().items():
        for action in sub._actions:
            if not action.choices or not action.help:
                continue
            for ext in re.findall(r"(?<![\w/])\.[a-z]{3,4}\b", action.help):
                assert ext in action.choices or "Python" in action.help, \
                    (name, action.option_strings, ext, action.help)


def test_reduced_decode_is_described_in_one_wording():
    readme = open(os.path.join(os.path.dirname(__file__), os.pardir, "docs", "usage.md")).read()
    help_text = _subcommands()["im2rec"]._option_string_actions["--reduced-decode"].help
    assert "at least twice the resize target" in help_text
    assert "4x" not in help_text.split("(")[0]  # not the old "at least 4x the target"
    assert "at least twice the `--resize` target" in readme


def test_png_takes_its_own_default_level_never_a_jpeg_quality(tmp_path, real_reader):
    """.png without --quality: compression level 9, which is what im2rec.py's default 95
    becomes in OpenCV, so the bytes are im2rec.py's; OpenCV is never given 95 (OpenCV 5
    warns about it once per worker). JPEG keeps 95."""
    import cv2
    image = np.random.RandomState(0).randint(0, 255, (40, 50, 3), np.uint8)
    image[:20] = 7
    for name, encoding, params in (("p", ".png", [cv2.IMWRITE_PNG_COMPRESSION, 9]),
                                   ("j", ".jpg", [cv2.IMWRITE_JPEG_QUALITY, 95])):
        with rp.RecordFileWriter(str(tmp_path / (name + ".rec")), encoding=encoding) as w:
            w.write(image, 0)
        stored = real_reader(tmp_path / (name + ".rec"))[0][1]
        assert stored == cv2.imencode(encoding, image[:, :, ::-1], params)[1].tobytes()
    script = ("import numpy as np, mxnet_recpack as rp\n"
              "with rp.RecordFileWriter(%r, encoding='.png', quality=95) as w:\n"
              "    w.write(np.zeros((8, 8, 3), np.uint8), 0)\n" % str(tmp_path / "q.rec"))
    quiet = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                           timeout=120)
    assert quiet.returncode == 0 and "IMWRITE_PNG_COMPRESSION" not in quiet.stderr, quiet.stderr


def test_the_demo_runs_from_a_plain_install(tmp_path):
    """`python -m mxnet_recpack.demo` with neither scikit-image nor scikit-learn (a plain pip
    install): the photos that ship in the package; with MXNet, Gluon's path; without, the
    MXNet-free one. The file it writes is whole."""
    script = ("import sys\n"
              "sys.modules['skimage'] = sys.modules['sklearn'] = None\n"
              "from mxnet_recpack.demo import main\n"
              "sys.exit(main([%r]))\n" % str(tmp_path / "demo"))
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    assert "read back 48 images" in result.stderr, result.stderr
    check = run("verify", tmp_path / "demo" / "demo_train.rec")
    assert check.returncode == 0 and "OK, 48 records" in check.stdout, check.stdout


def test_the_bundled_photos_are_the_demo_s_and_ship_with_their_terms():
    from mxnet_recpack.samples import bundled_photos
    photos = bundled_photos()
    assert [name for name, _ in photos] == ["astronaut", "chelsea", "coffee",
                                            "hubble_deep_field", "rocket"]
    assert all(p.ndim == 3 and max(p.shape[:2]) == 480 for _, p in photos)
    here = os.path.join(os.path.dirname(rp.__file__), "sample_data")
    terms = open(os.path.join(here, "README.md")).read()
    for name, _ in photos:
        assert "`%s.jpg`" % name in terms
    assert os.path.getsize(os.path.join(os.path.dirname(__file__), os.pardir, "LICENSE")) > 10000


def test_the_missing_mxnet_advice_fits_this_python():
    """On Python 3.12+ `[mxnet]` cannot install MXNet: the advice says what to do instead."""
    from mxnet_recpack.gluon import INSTALL_HINT
    if sys.version_info < (3, 12):
        assert INSTALL_HINT.startswith("pip install 'mxnet_recpack[mxnet]'")
    else:
        assert "MXNet has no release for Python %d.%d" % sys.version_info[:2] in INSTALL_HINT
        assert "python3.11 -m venv" in INSTALL_HINT


@pytest.mark.slow
def test_the_wheel_carries_the_license_and_the_demo_photos(tmp_path):
    import shutil
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    source = tmp_path / "source"  # setuptools builds in the source tree: a copy, not the clone
    shutil.copytree(os.path.join(here, "mxnet_recpack"), source / "mxnet_recpack",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("setup.py", "pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(os.path.join(here, name), source / name)
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                            str(tmp_path), str(source)], capture_output=True, text=True,
                           timeout=600)
    assert built.returncode == 0, built.stderr
    import zipfile
    [wheel] = [p for p in os.listdir(tmp_path) if p.endswith(".whl")]
    names = zipfile.ZipFile(tmp_path / wheel).namelist()
    assert any(n.endswith(".dist-info/licenses/LICENSE") or n.endswith(".dist-info/LICENSE")
               for n in names), names
    assert sum(n.startswith("mxnet_recpack/sample_data/") and n.endswith(".jpg")
               for n in names) == 5
