"""recpack im2rec against MXNet's own tools/im2rec.py on the same folder: same bytes, same
pixels."""
import os
import shutil
import sys

import cv2
import mxnet as mx
import numpy as np
import pytest
from mxnet.gluon.data.vision import transforms

import mxnet_recpack as rp
from helpers import im2rec_script, recpack_cmd, run_all
from mxnet_recpack.cli import main as recpack_main

pytestmark = pytest.mark.mxnet  # read back with MXNet's own readers

# (case id, flags given to both tools). Each case packs the same .lst with both.
CASES = [
    ("default", []),
    ("pass_through", ["--pass-through"]),
    ("resize", ["--resize", "48"]),
    ("center_crop_resize", ["--center-crop", "--resize", "40"]),
    ("center_crop", ["--center-crop"]),
    ("gray", ["--color", "0", "--resize", "32"]),
    ("unchanged_png", ["--color", "-1", "--encoding", ".png"]),
    ("quality", ["--quality", "40", "--resize", "64"]),
    ("pack_label", ["--pack-label"]),
    ("threads", ["--num-thread", "2", "--resize", "36"]),
]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Photos in 3 class folders (JPEG, plus an RGBA and a gray PNG) and a 2-label list."""
    root = tmp_path_factory.mktemp("photos")
    rp.samples.make_image_folder(str(root), classes=3, per_class=4, long_side=(120, 200), seed=3)
    rgba = np.zeros((60, 90, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, np.arange(90, dtype=np.uint8)[None, :] * 2
    cv2.imwrite(str(root / "class_0" / "alpha.png"), rgba)
    cv2.imwrite(str(root / "class_1" / "gray.png"), np.tile(np.arange(70, dtype=np.uint8), (50, 1)))
    work = tmp_path_factory.mktemp("lists")
    assert recpack_main(["im2rec", "--list", "--recursive", "-q", str(work / "data"),
                         str(root)]) == 0
    lines = (work / "data.lst").read_text().splitlines()
    # a second label per line for --pack-label: key / 10
    multi = "".join("%s\t%f\t%s\n" % (l.split("\t")[0], int(l.split("\t")[0]) / 10,
                                         "\t".join(l.split("\t")[1:])) for l in lines)
    return str(root), (work / "data.lst").read_text(), multi


@pytest.fixture(scope="module")
def packed(folder, tmp_path_factory):
    """Run both tools on every case, concurrently. Map case id -> (ours dir, theirs dir)."""
    root, lst, multi = folder
    base = tmp_path_factory.mktemp("packed")
    commands, dirs = [], {}
    for case_id, flags in CASES:
        pair = []
        for who in ("ours", "theirs"):
            d = base / case_id / who
            d.mkdir(parents=True)
            (d / "data.lst").write_text(multi if case_id == "pack_label" else lst)
            pair.append(d)
        dirs[case_id] = tuple(pair)
        commands.append(recpack_cmd("im2rec", "-q", pair[0] / "data", root, *flags))
        commands.append([sys.executable, im2rec_script(), str(pair[1] / "data"), root] + flags)
    for (code, out, err), cmd in zip(run_all(commands), commands):
        assert code == 0, (cmd, out, err)
    return dirs


def read_all(rec):
    r = mx.recordio.MXIndexedRecordIO(rec[:-4] + ".idx", rec, "r")
    out = [(k,) + tuple(mx.recordio.unpack(r.read_idx(k))) for k in r.keys]
    r.close()
    return out


@pytest.mark.parametrize("case_id", [c[0] for c in CASES])
def test_same_bytes_as_im2rec_py(packed, case_id):
    ours, theirs = packed[case_id]
    for ext in (".rec", ".idx"):
        a = (ours / ("data" + ext)).read_bytes()
        b = (theirs / ("data" + ext)).read_bytes()
        assert len(a) > 0 and a == b, ext


def test_records_decode_to_the_expected_pixels(packed, folder):
    """Beyond equal bytes: keys in list order, sizes and pixels of im2rec's preprocessing."""
    root, lst, _ = folder
    rows = [l.split("\t") for l in lst.splitlines()]
    ours, _ = packed["center_crop_resize"]
    records = read_all(str(ours / "data.rec"))
    assert [r[0] for r in records] == [int(row[0]) for row in rows]
    for (key, header, body), row in zip(records, rows):
        assert header.id == key and header.label == float(row[1])
        img = cv2.imdecode(np.frombuffer(body, np.uint8), 1)
        src = cv2.imread(os.path.join(root, row[-1]), 1)
        side = min(src.shape[:2])
        assert img.shape[:2] == (40, 40)
        y, x = (src.shape[0] - side) // 2, (src.shape[1] - side) // 2
        ref = cv2.resize(src[y:y + side, x:x + side], (40, 40))
        ok, jpg = cv2.imencode(".jpg", ref, [cv2.IMWRITE_JPEG_QUALITY, 95])
        np.testing.assert_array_equal(img, cv2.imdecode(jpg, 1))


def test_pack_label_keeps_both_labels(packed):
    ours, _ = packed["pack_label"]
    for key, header, _ in read_all(str(ours / "data.rec")):
        assert header.flag == 2
        assert header.label[0] == pytest.approx(key / 10, rel=1e-6)


@pytest.mark.timeout(120)  # also guards against fork deadlocks (OpenCV's pool used here first)
def test_output_order_never_depends_on_num_thread(packed, folder, tmp_path):
    root, lst, _ = folder
    (tmp_path / "data.lst").write_text(lst)
    assert recpack_main(["im2rec", "-q", "--num-thread", "3", "--batch-size", "2", "--resize",
                         "36", str(tmp_path / "data"), root]) == 0
    ours, _ = packed["threads"]
    assert (tmp_path / "data.rec").read_bytes() == (ours / "data.rec").read_bytes()


def test_pass_through_with_threads_gives_the_same_bytes(packed, folder, tmp_path):
    root, lst, _ = folder
    (tmp_path / "data.lst").write_text(lst)
    assert recpack_main(["im2rec", "-q", "--pass-through", "--num-thread", "2",
                         "--batch-size", "3", str(tmp_path / "data"), root]) == 0
    ours, _ = packed["pass_through"]
    assert (tmp_path / "data.rec").read_bytes() == (ours / "data.rec").read_bytes()


def test_pass_through_batches_give_im2rec_py_bytes_where_records_split(tmp_path):
    """Pass-through frames each batch in one buffer: where dmlc must split a record (the magic
    word in a file, a key, a label), around a file larger than the first buffer and a missing
    one, in batches of 3 with threads, the bytes are still im2rec.py's."""
    rng = np.random.RandomState(5)
    word = (0xCED7230A).to_bytes(4, "little")
    root = tmp_path / "images"
    root.mkdir()
    jpg = [cv2.imencode(".jpg", rng.randint(0, 255, (30 + i, 40, 3)).astype(np.uint8))[1]
           .tobytes() for i in range(5)]
    comment = b"ab" + word + b"c" + word + b"defg" + word
    files = {"a.jpg": jpg[0], "b.jpg": jpg[1], "c.jpg": jpg[2], "d.jpg": jpg[3],
             "magic.jpg": jpg[4][:2] + b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") +
             comment + jpg[4][2:],
             "big.jpg": cv2.imencode(".jpg", rng.randint(0, 255, (900, 900, 3)).astype(
                 np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 100])[1].tobytes()}
    for name, data in files.items():
        (root / name).write_bytes(data)
    label = float(np.frombuffer(word, "<f4")[0])
    rows = [(0, "1", "a.jpg"), (1, "2", "magic.jpg"), (0xCED7230A, "3", "b.jpg"),
            (3, "%f" % label, "c.jpg"), (4, "4", "missing.jpg"), (5, "5\t6\t7", "big.jpg"),
            (6, "8", "d.jpg"), (7, "9", "a.jpg")]
    outputs = []
    for who in ("ours", "theirs"):
        (tmp_path / who).mkdir()
        (tmp_path / who / "data.lst").write_text("".join("%d\t%s\t%s\n" % r for r in rows))
        outputs.append(tmp_path / who / "data")
    flags = ["--pass-through", "--pack-label", "--num-thread", "2"]
    commands = [recpack_cmd("im2rec", "-q", outputs[0], root, "--batch-size", "3", *flags),
                [sys.executable, im2rec_script(), str(outputs[1]), str(root)] + flags]
    for (code, out, err), cmd in zip(run_all(commands), commands):
        assert code == 0, (cmd, out, err)
    ours, theirs = (open(str(p) + ".rec", "rb").read() for p in outputs)
    assert ours == theirs and ours.count(word) > len(rows)  # split records: more frames
    assert (tmp_path / "ours" / "data.idx").read_bytes() == \
        (tmp_path / "theirs" / "data.idx").read_bytes()


def test_inter_method_matches_opencv(folder, tmp_path):
    root, lst, _ = folder
    (tmp_path / "data.lst").write_text(lst)
    # (3, area, decodes JPEGs at reduced scale first: see test_fast_paths)
    for method, flag in [(0, cv2.INTER_NEAREST), (2, cv2.INTER_CUBIC),
                         (4, cv2.INTER_LANCZOS4)]:
        rec = rp.im2rec(str(tmp_path / "data.lst"), None,
                        {"root": root, "resize": 30, "inter_method": method,
                         "encoding": ".png"}, str(tmp_path / ("m%d" % method)))
        key, _, body = read_all(rec)[0]
        row = lst.splitlines()[0].split("\t")
        src = cv2.imread(os.path.join(root, row[-1]), 1)
        h, w = src.shape[:2]
        size = (30, h * 30 // w) if h > w else (w * 30 // h, 30)
        expect = cv2.resize(src, size, interpolation=flag)
        np.testing.assert_array_equal(cv2.imdecode(np.frombuffer(body, np.uint8), 1), expect)


def test_python_api_applies_gluon_transforms_after_preprocessing(folder, tmp_path):
    root, lst, _ = folder
    (tmp_path / "data.lst").write_text(lst)
    out = rp.im2rec(str(tmp_path / "data.lst"),
                    transforms.Compose([transforms.CenterCrop(32)]),
                    {"root": root, "resize": 48, "num_thread": 2}, str(tmp_path / "out"))
    assert out == str(tmp_path / "out.rec")
    it = mx.io.ImageRecordIter(path_imgrec=out, data_shape=(3, 32, 32), batch_size=4)
    n = sum(4 - b.pad for b in it)
    assert n == len(lst.splitlines())


@pytest.mark.parametrize("params, message", [
    ({"rezise": 3}, r"unknown dataset_params key\(s\) 'rezise'; valid keys: .*resize"),
    ({"color": 2}, r"dataset_params\['color'\] = 2 is not valid; expected 1, 0 or -1"),
    ({"encoding": ".bmp"}, r"expected '.jpg', '.png' or '.npy'"),
    ({"inter_method": 7}, r"expected one of 0 \(nearest\)"),
    ({"num_thread": 0}, r"num_thread.*an integer >= 1"),
    ({"resize": -1}, r"resize.*an integer >= 0"),
])
def test_dataset_params_are_checked(tmp_path, params, message):
    (tmp_path / "a.lst").write_text("0\t0\tx.jpg\n")
    with pytest.raises(rp.OptionError, match=message):
        rp.im2rec(str(tmp_path / "a.lst"), None, params, str(tmp_path / "a"))
    with pytest.raises(rp.OptionError, match="transforms cannot be applied"):
        rp.im2rec(str(tmp_path / "a.lst"), transforms.Resize(3), {"pass_through": True})
    assert sorted(os.listdir(tmp_path)) == ["a.lst"]


def test_console_scripts_and_missing_list(tmp_path):
    bindir = os.path.dirname(sys.executable)
    for script in ("recpack", "im2rec"):
        assert shutil.which(script, path=bindir), "console script %s is not installed" % script
    code, out, err = run_all([[os.path.join(bindir, "im2rec"), str(tmp_path / "nothing"),
                               str(tmp_path)]])[0]
    assert code == 1
    assert "no list file nothing*.lst" in err and "--list" in err


class _WorkerThreads:
    """A progress callback noting the reader threads alive after each batch (by name)."""

    def __init__(self):
        self.seen = set()

    def __call__(self, done, total):
        import threading
        self.seen |= {t.name for t in threading.enumerate()
                      if t.name.startswith("recpack-worker-")}


@pytest.fixture
def two_cores():
    """This process (and the threads it starts) on two cores, as on the 2-core machines the
    copy threads were measured on."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, sorted(before)[:2])
    yield len(os.sched_getaffinity(0))
    os.sched_setaffinity(0, before)


def test_pass_through_from_local_files_reads_with_one_thread_per_core_beside_the_writer(
        packed, folder, tmp_path, monkeypatch, two_cores):
    """Copying files' bytes holds the GIL: on 2 cores, --num-thread 4 reads with 1 thread
    (measured faster than 2); re-encoding keeps every thread asked for. Same bytes either way."""
    from mxnet_recpack.pipeline import executors
    root, lst, _ = folder
    (tmp_path / "data.lst").write_text(lst)
    assert recpack_main(["im2rec", "-q", "--pass-through", "--num-thread", "4",
                         str(tmp_path / "data"), root]) == 0
    theirs = packed["pass_through"][1]  # im2rec.py's own output of the same list
    for ext in (".rec", ".idx"):
        assert (tmp_path / ("data" + ext)).read_bytes() == (theirs / ("data" + ext)).read_bytes()
    rows = [line.split("\t") for line in lst.splitlines()]  # each file three times: 3n batches
    (tmp_path / "many.lst").write_text("".join("%d\t%s\t%s\n" % (100 * copy + int(k), label, rel)
                                               for copy in range(3) for k, label, rel in rows))
    used = {}
    for name, params in (("copy", {"pass_through": True}), ("resize", {"resize": 36})):
        threads = _WorkerThreads()
        rp.im2rec(str(tmp_path / "many.lst"), None, dict(params, root=root, num_thread=4,
                                                        batch_size=1, progress=threads),
                  str(tmp_path / name))
        used[name] = len(threads.seen)
    assert used == {"copy": max(1, two_cores - 1), "resize": 4}
    # more cores than this machine has: the count follows them (a patched system call)
    monkeypatch.setattr(executors.os, "sched_getaffinity", lambda pid: set(range(8)))
    assert executors.copy_threads(4) == 4 and executors.copy_threads(16) == 7
