"""inspect, contact sheet and extract: numbers checked against what was written, colours on the
sheet, and extract -> im2rec --pass-through reproducing the same .rec/.idx bytes."""
import argparse
import json
import os
import subprocess

import cv2
import numpy as np
import pytest

import mxnet_recpack as rp
from helpers import recpack_cmd, write_arrays, write_lst
from mxnet_recpack import RecordFileWriter
from mxnet_recpack.cli.inspect import add_extract, add_inspect
from mxnet_recpack.errors import (OptionError, OutputExistsError, RecordFormatError,
                                  RecpackError)
from mxnet_recpack.inspection import contact_sheet, extract, inspect_file


def run_cli(*argv):
    p = argparse.ArgumentParser()
    sub = p.add_subparsers()
    add_inspect(sub)
    add_extract(sub)
    args = p.parse_args([str(a) for a in argv])
    return args.func(args)


def solid(rgb, h, w):
    img = np.zeros((h, w, 3), np.uint8)
    img[:] = rgb
    return img


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


@pytest.fixture
def array_rec(tmp_path):
    """12 PNG records: sizes 24x32 (x8) and 40x20 (x4), labels 0..2, the first one pure red."""
    imgs = [solid((255, 0, 0), 24, 32)] + [solid((0, 30 * i, 200), 24, 32) for i in range(1, 8)]
    imgs += [solid((0, 255, 0), 40, 20)] * 4
    labels = [i % 3 for i in range(12)]
    rec = str(tmp_path / "arr.rec")
    write_arrays(rec, imgs, labels, encoding=".png")
    return rec


# ---- inspect ----------------------------------------------------------------------------------

@pytest.mark.parametrize("with_index", [True, False])
def test_inspect_counts_keys_labels_sizes_encodings(array_rec, with_index):
    if not with_index:
        os.remove(array_rec[:-4] + ".idx")
    info = inspect_file(array_rec)
    assert info["records"] == 12
    assert info["has_index"] is with_index
    assert info["keys"] == {"min": 0, "max": 11}
    assert info["file_size"] == os.path.getsize(array_rec)
    assert info["labels"]["scalar"] == {0.0: 4, 1.0: 4, 2.0: 4}
    assert info["labels"]["vector_lengths"] == {}
    assert info["encodings"] == {"jpeg": 0, "png": 12, "npy": 0, "other": 0}
    sizes = info["sizes"]
    assert sizes["most_common"] == [[32, 24, 8], [20, 40, 4]]
    assert sizes["width"] == {"min": 20, "max": 32, "median": 32.0}
    assert sizes["height"] == {"min": 24, "max": 40, "median": 24.0}
    assert sizes["unknown"] == 0


def test_inspect_vector_labels_and_every_encoding(tmp_path):
    rec = str(tmp_path / "mixed.rec")
    ok, jpg = cv2.imencode(".jpg", solid((1, 2, 3), 30, 50))
    ok, bmp = cv2.imencode(".bmp", solid((1, 2, 3), 7, 9))  # no size shortcut taken: decoded
    with RecordFileWriter(rec, encoding=".npy") as w:
        w.write(jpg.tobytes(), [2, 5, 0, .1, .2, .5, .6], key=10)
        w.write(jpg.tobytes(), [1, 5, 0, .1, .2, .5, .6], key=3)
        w.write(solid((9, 9, 9), 6, 8), [2, 7], key=7)                  # HWC .npy
        w.write(np.zeros((3, 5, 4), np.float32), 4.5, key=8)            # CHW float .npy
        w.write(bmp.tobytes(), 4.5, key=20)
        w.write(b"definitely not an image", 1, key=21)
    info = inspect_file(rec)
    assert info["records"] == 6
    assert info["keys"] == {"min": 3, "max": 21}
    assert info["labels"] == {"scalar": {1.0: 1, 4.5: 2}, "vector_lengths": {2: 1, 7: 2},
                              "first_label": {1.0: 1, 2.0: 2}}
    assert info["encodings"] == {"jpeg": 2, "png": 0, "npy": 2, "other": 2}
    assert info["sizes"]["most_common"] == [[50, 30, 2], [4, 5, 1], [8, 6, 1], [9, 7, 1]]
    assert info["sizes"]["unknown"] == 1


def test_inspect_ten_thousand_records(tmp_path):
    """Counts and sizes over a larger file (sizes from headers, no decoding; its speed is a
    benchmark matter, not asserted here)."""
    ok, jpg = cv2.imencode(".jpg", np.random.RandomState(0).randint(0, 255, (48, 64, 3),
                                                                    dtype=np.uint8))
    ok, png = cv2.imencode(".png", solid((5, 6, 7), 30, 20))
    rec = str(tmp_path / "big.rec")
    with RecordFileWriter(rec) as w:
        for i in range(10000):
            w.write(jpg.tobytes() if i % 2 else png.tobytes(), i % 7)
    info = inspect_file(rec)
    assert info["records"] == 10000
    assert sum(info["labels"]["scalar"].values()) == 10000
    assert info["sizes"]["most_common"] == [[20, 30, 5000], [64, 48, 5000]]


def test_inspect_errors_name_the_file(tmp_path, array_rec):
    with pytest.raises(FileNotFoundError, match="missing.rec: record file not found"):
        inspect_file(tmp_path / "missing.rec")
    with pytest.raises(FileNotFoundError, match="recpack index"):
        inspect_file(array_rec, idx_path=str(tmp_path / "nope.idx"))
    (tmp_path / "junk.rec").write_bytes(b"\0" * 64)
    with pytest.raises(RecordFormatError, match="byte offset 0: bad magic word"):
        inspect_file(tmp_path / "junk.rec")


def test_inspect_empty_file(tmp_path):
    rec = str(tmp_path / "empty.rec")
    with RecordFileWriter(rec):
        pass
    info = inspect_file(rec)
    assert info["records"] == 0 and info["keys"] is None and info["sizes"]["width"] is None
    with pytest.raises(RecpackError, match="holds no records"):
        contact_sheet(rec, tmp_path / "s.png")


# ---- contact sheet ----------------------------------------------------------------------------

def boxes_of(sheet, bgr):
    """``(x, y, width, height)`` of every region of exactly this colour, row by row."""
    mask = (sheet == np.array(bgr, np.uint8)).all(axis=2).astype(np.uint8)
    n, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=4)
    return sorted((tuple(int(v) for v in stats[i][:4]) for i in range(1, n)),
                  key=lambda b: (b[1], b[0]))


def test_contact_sheet_size_and_red_stays_red(tmp_path, array_rec):
    """The geometry measured on the sheet itself: each image scaled to fit the 64 px cell
    with its aspect kept and centred, cells left to right then top to bottom, 4 a row, even
    margins, a strip of text under each cell, nothing drawn past the 10 images asked for."""
    out = str(tmp_path / "sheet.png")
    assert contact_sheet(array_rec, out, count=10, columns=4, thumb=64) == out
    sheet = cv2.imread(out, cv2.IMREAD_COLOR)
    colours = [(0, 0, 255)] + [(200, 30 * i, 0) for i in range(1, 8)]  # BGR of keys 0-7
    boxes = [boxes_of(sheet, c) for c in colours]
    assert [len(b) for b in boxes] == [1] * 8  # red stays red, each colour once
    boxes = [b[0] for b in boxes] + boxes_of(sheet, (0, 255, 0))  # keys 8, 9: green
    assert len(boxes) == 10
    assert {b[2:] for b in boxes[:8]} == {(64, 48)} and {b[2:] for b in boxes[8:]} == {(32, 64)}
    cells = [(x - (64 - w) // 2, y - (64 - h) // 2) for x, y, w, h in boxes]  # centred
    margin = cells[0][0]
    pitch_x, pitch_y = cells[1][0] - cells[0][0], cells[4][1] - cells[0][1]
    assert margin > 0 and cells[0][1] == margin
    assert cells == [(margin + (k % 4) * pitch_x, margin + (k // 4) * pitch_y)
                     for k in range(10)]
    assert pitch_x - 64 == margin  # as much space between cells as around them
    strip = pitch_y - 64 - margin
    assert strip > 0 and sheet.shape == (3 * pitch_y + margin, 4 * pitch_x + margin, 3)
    for x, y in cells:  # white text under every cell
        assert sheet[y + 64:y + 64 + strip, x:x + 64].min(axis=2).max() > 200
    np.testing.assert_array_equal(sheet[cells[0][1] + 2, cells[0][0] + 32], [0, 0, 0])  # bars
    empty = sheet[margin + 2 * pitch_y:, margin + 2 * pitch_x:]  # where cells 10, 11 would be
    assert (empty == sheet[0, 0]).all()


def test_contact_sheet_npy_cells_and_fewer_images_than_columns(tmp_path):
    rec = str(tmp_path / "npy.rec")
    with RecordFileWriter(rec, encoding=".npy") as w:
        w.write(solid((255, 0, 0), 16, 16), 0)
        w.write(np.ones((3, 16, 16), np.float32), 1)
    out = contact_sheet(rec, str(tmp_path / "npy.png"), thumb=32)
    sheet = cv2.imread(out)
    (x, y, w, h), = boxes_of(sheet, (0, 0, 255))  # the uint8 image, scaled to the cell
    assert (w, h) == (32, 32) and x == y
    grey = [b for b in boxes_of(sheet, (128, 128, 128)) if b[2] > 16]  # the tensor's cell
    assert len(grey) == 1 and grey[0][1] == y and grey[0][0] > x + 32
    assert sheet.shape[1] == grey[0][0] + 32 + x  # 2 columns used, not 6


@pytest.mark.parametrize("kwargs, match", [
    ({"count": 0}, "count must be an integer >= 1; got 0"),
    ({"columns": 2.5}, "columns must be an integer >= 1"),
    ({"thumb": 8}, "thumb must be an integer >= 16; got 8"),
])
def test_contact_sheet_checks_options(tmp_path, array_rec, kwargs, match):
    with pytest.raises(OptionError, match=match):
        contact_sheet(array_rec, tmp_path / "s.png", **kwargs)


def test_contact_sheet_needs_an_existing_folder(tmp_path, array_rec):
    with pytest.raises(FileNotFoundError, match="does not exist; create it first"):
        contact_sheet(array_rec, tmp_path / "no" / "s.png")


# ---- extract ----------------------------------------------------------------------------------

@pytest.fixture
def vector_pass_through(tmp_path, image_folder):
    """image_folder packed by pass-through with 3 labels per line (one needing %.9g)."""
    root, _, rows = image_folder
    rows = [(k, [lab, lab * 0.5 + 0.25, 1.5e-07 * i], rel) for i, (k, lab, rel) in
            enumerate(rows)]
    with open(tmp_path / "vec.lst", "w") as f:
        for key, labels, rel in rows:
            f.write("%d\t%s\t%s\n" % (key, "\t".join("%.9g" % x for x in labels), rel))
    rec = rp.im2rec(str(tmp_path / "vec.lst"), None,
                    {"root": root, "pass_through": True, "pack_label": True},
                    str(tmp_path / "vec"))
    return rec, root, rows


def test_extract_writes_the_stored_bytes_and_an_im2rec_list(tmp_path, vector_pass_through):
    rec, root, rows = vector_pass_through
    out = tmp_path / "out"
    lst = extract(rec, out)
    assert lst == str(out / "vec.lst")
    lines = (out / "vec.lst").read_text().splitlines()
    assert [int(l.split("\t")[0]) for l in lines] == [k for k, _, _ in rows]
    for line, (key, labels, rel) in zip(lines, rows):
        fields = line.split("\t")
        assert fields[-1] == "%d.jpg" % key
        assert fields[1] == "%f" % labels[0]  # im2rec.py's format when it is exact
        np.testing.assert_array_equal(np.float32([float(x) for x in fields[1:-1]]),
                                      np.float32(labels))
        assert read_bytes(out / fields[-1]) == read_bytes(os.path.join(root, rel))
    assert sorted(os.listdir(out)) == sorted(["vec.lst"] + ["%d.jpg" % k for k, _, _ in rows])


def test_extract_then_im2rec_pass_through_gives_the_same_bytes(tmp_path, vector_pass_through):
    rec, _, _ = vector_pass_through
    out = tmp_path / "out"
    assert run_cli("extract", rec, out, "-q") == 0
    done = subprocess.run(recpack_cmd("im2rec", "--pass-through", "--pack-label", out / "vec",
                                      out), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert read_bytes(out / "vec.rec") == read_bytes(rec)
    assert read_bytes(out / "vec.idx") == read_bytes(rec[:-4] + ".idx")


def test_extract_round_trip_scalar_labels_png_and_no_index(tmp_path, photos):
    src = tmp_path / "src"
    src.mkdir()
    rows = []
    for i, (name, img) in enumerate(photos[:5]):
        ext = ".png" if i % 2 else ".jpg"
        ok, buf = cv2.imencode(ext, cv2.resize(img, (40, 30))[:, :, ::-1])
        (src / (name + ext)).write_bytes(buf.tobytes())
        rows.append((100 - 7 * i, i * 0.1, name + ext))
    write_lst(tmp_path / "s.lst", rows)
    rec = rp.im2rec(str(tmp_path / "s.lst"), None, {"root": str(src), "pass_through": True},
                    str(tmp_path / "s"))
    idx = read_bytes(rec[:-4] + ".idx")
    os.remove(rec[:-4] + ".idx")  # read sequentially: keys from the headers
    out = tmp_path / "out"
    extract(rec, out)
    assert {f for f in os.listdir(out) if f != "s.lst"} == {"100.jpg", "93.png", "86.jpg",
                                                           "79.png", "72.jpg"}
    again = rp.im2rec(str(out / "s.lst"), None, {"root": str(out), "pass_through": True},
                      str(out / "s"))
    assert read_bytes(again) == read_bytes(rec)
    assert read_bytes(again[:-4] + ".idx") == idx


def test_extract_refuses_a_non_empty_folder_unless_overwrite(tmp_path, array_rec):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(OutputExistsError, match="out is not empty; .*overwrite=True"):
        extract(array_rec, out)
    assert os.listdir(out) == ["keep.txt"]
    extract(array_rec, out, overwrite=True)
    assert (out / "keep.txt").read_text() == "mine"
    assert len(os.listdir(out)) == 1 + 12 + 1


def test_extract_without_index_refuses_repeated_ids(tmp_path):
    rec = str(tmp_path / "dup.rec")
    with RecordFileWriter(rec) as w:
        w.write(b"x", 0, key=1)
    data = read_bytes(rec)
    with open(rec, "ab") as f:
        f.write(data)  # the same record (id 1) twice
    with pytest.raises(RecordFormatError, match="record id 1 is used by an earlier record"):
        extract(rec, tmp_path / "out", idx_path=False)


# ---- command line -----------------------------------------------------------------------------

def test_cli_inspect_text_json_and_sheet(tmp_path, array_rec, capsys):
    sheet = tmp_path / "sheet.png"
    assert run_cli("inspect", array_rec, "--sheet", sheet, "--count", "4") == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) <= 25
    assert out[0].startswith("%s: 12 records" % array_rec)
    assert "keys: 0 .. 11" in out
    assert "encodings: png 12" in out
    assert "scalar labels (3 distinct):" in out
    assert out[-1] == "contact sheet of the first 4 images: %s" % sheet
    drawn = cv2.imread(str(sheet))
    reds = boxes_of(drawn, (0, 0, 255)) + [boxes_of(drawn, (200, 30 * i, 0))[0]
                                           for i in (1, 2, 3)]
    assert [b[1] for b in reds] == [reds[0][1]] * 4  # 4 images in one row,
    assert drawn.shape[1] == reds[3][0] + 128 + reds[0][0]  # and nothing beside them
    assert run_cli("inspect", array_rec, "--json") == 0
    info = json.loads(capsys.readouterr().out)
    assert info["records"] == 12 and info["labels"]["scalar"] == {"0.0": 4, "1.0": 4, "2.0": 4}


def test_cli_inspect_shows_top_ten_labels_only(tmp_path, capsys):
    rec = str(tmp_path / "many.rec")
    write_arrays(rec, np.zeros((30, 4, 4, 3), np.uint8), np.arange(30) % 15)
    run_cli("inspect", rec)
    out = capsys.readouterr().out
    assert len(out.splitlines()) <= 25
    assert "scalar labels (15 distinct):" in out
    assert "... 5 more values (10 records)" in out


def test_cli_inspect_stays_compact_with_scalar_and_detection_labels(tmp_path, capsys):
    rec = str(tmp_path / "mixed.rec")
    with RecordFileWriter(rec) as w:
        for i in range(20):
            w.write(b"x", i)                                             # 20 scalar labels
            w.write(b"x", [i, 5] + [0.1] * 5 * (1 + i % 8))              # 8 vector lengths
    run_cli("inspect", rec, "--sheet", tmp_path / "s.png")
    out = capsys.readouterr().out.splitlines()
    assert len(out) <= 25
    assert "scalar labels (20 distinct):" in out and "  ... 15 more values (15 records)" in out
    assert out[out.index("scalar labels (20 distinct):") + 1] == "  0: 1"
    assert any(l.startswith("vector labels, by length: 7 values: 3 records") and
               l.endswith(", ... 3 more lengths") for l in out)
    assert "first label of the vectors (20 distinct):" in out
    assert "size unknown: 40 records" in out
    assert "encodings: other 40" in out


def test_cli_extract_prints_one_line(tmp_path, array_rec, capsys):
    assert run_cli("extract", array_rec, tmp_path / "x") == 0
    out = capsys.readouterr().out.splitlines()
    assert out == ["%s: extracted 12 images to %s, list %s"
                   % (array_rec, tmp_path / "x", tmp_path / "x" / "arr.lst")]
    with pytest.raises(OutputExistsError, match="not empty"):
        run_cli("extract", array_rec, tmp_path / "x")
    assert run_cli("extract", array_rec, tmp_path / "x", "--overwrite", "-q") == 0
