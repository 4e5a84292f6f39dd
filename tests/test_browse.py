"""recpack browse: the pages over HTTP (what they show, checked against the files), what it
refuses (traversal, absolute URLs, foreign Host headers, other sites, writing methods), that a
file of many records opens without reading them, files without an index, damage, InsightFace
identities, failure reports, verify in the background, parts and s3://; and, marked
``browser``, the pages in a real headless Chromium (Debian's, driven by Playwright): paging,
filtering, a record, and pixels of the rendered images.

``RECPACK_BROWSE_SCREENSHOT=docs/browse.png pytest tests/test_browse.py -k screenshot`` also
writes the README's screenshot there.
"""
import http.client
import os
import re
import shutil
import signal
import subprocess
import threading
import time

import cv2
import numpy as np
import pytest

import mxnet_recpack as rp
from helpers import recpack_cmd, write_lst
from mxnet_recpack.cli.browse import browse_paths
from mxnet_recpack.format.framing import MAGIC
from mxnet_recpack.inspection.browse import Browser, BrowseServer, is_loopback
from mxnet_recpack.inspection.browse_files import classes_path_candidates


@pytest.fixture(scope="module")
def photos_rec(tmp_path_factory):
    """The built-in sample photos, 3 classes x 6, resized to 200 px, with PREFIX.classes.tsv."""
    root = tmp_path_factory.mktemp("photos")
    rp.samples.make_image_folder(str(root / "images"), classes=3, per_class=6,
                                 long_side=(300, 400), seed=3)
    rp.make_list(str(root / "images"), str(root / "photos"), recursive=True)
    return rp.im2rec(str(root / "photos.lst"),
                     dataset_params={"root": str(root / "images"), "resize": 200})


def verifier(path, quick):
    result = rp.verify(path, quick=quick)
    return dict(result.as_dict(), problem_count=result.problem_count)


@pytest.fixture
def serve():
    """``serve(paths, **Browser options)``: a BrowseServer on a free loopback port, in a
    thread, stopped afterwards."""
    servers = []

    def start(paths, host="127.0.0.1", **options):
        options.setdefault("verifier", verifier)
        server = BrowseServer(Browser(paths if isinstance(paths, list) else [paths], **options),
                              host)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def request(server, target, *, method="GET", host=None, headers=()):
    """``(status, headers, body)`` of one request sent exactly as given (target, Host)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
        for value in ([host] if isinstance(host, str) else host) if host is not None else \
                ["127.0.0.1:%d" % server.port]:
            conn.putheader("Host", value)
        for name, value in headers:
            conn.putheader(name, value)
        conn.endheaders()
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def page_text(server, target):
    status, _, body = request(server, target)
    assert status == 200, (target, status, body[:500])
    return body.decode("utf-8")


def cards(text):
    """``[(pos, key, label)]`` of the thumbnails on a grid page."""
    return [(int(p), int(k), lab) for p, k, lab in re.findall(
        r'class="card" href="[^"]+" data-pos="(\d+)" data-key="(\d+)" data-label="([^"]*)"',
        text)]


def records_of(rec):
    with rp.RecordFile(rec) as rf:
        return [(key, rf.offset(key)) + rf.read_image(key) for key in rf.keys]


# ---- what the pages show ----------------------------------------------------------------------

def test_pages_show_every_record_in_index_order_with_labels_and_class_names(photos_rec, serve):
    server = serve(photos_rec, page_size=7)
    status, headers, _ = request(server, "/")
    assert status == 303 and headers["Location"] == "/f/0"  # one file: straight to it
    records = records_of(photos_rec)
    classes = dict(line.split("\t") for line in open(photos_rec[:-4] + ".classes.tsv",
                                                    encoding="utf-8").read().splitlines())
    seen = []
    for page in range(3):
        text = page_text(server, "/f/0?page=%d" % page if page else "/f/0")
        got = cards(text)
        assert len(got) == (7 if page < 2 else 4)
        seen += got
        assert "page %d of 3" % (page + 1) in text
        named = re.findall(r'data-label="([^"]*)">.*?<span class="cls" title="([^"]*)"', text)
        assert named == [(label, classes[label]) for _, _, label in got]  # beside each label
    assert [(k, "%g" % h.label) for k, _, h, _ in records] == [(k, lab) for _, k, lab in seen]
    assert [p for p, _, _ in seen] == list(range(18))
    assert '18</b> records' in text and "3 class names from photos.classes.tsv" in text


def test_a_record_page_has_header_format_size_dimensions_offset_and_the_image(photos_rec,
                                                                              serve):
    server = serve(photos_rec)
    key, offset, header, image = records_of(photos_rec)[5]
    text = page_text(server, "/f/0/r/5")
    decoded = cv2.imdecode(np.frombuffer(image, np.uint8), cv2.IMREAD_COLOR)
    fields = dict(re.findall(r"<tr><th>([^<]+)</th><td>([^<]*)", text))
    assert fields["position"] == "5" and fields["key"] == str(key)
    assert fields["byte offset"] == str(offset)
    assert fields["label"] == "%g" % header.label and fields["flag"] == "0"
    assert fields["id"] == str(header.id) and fields["format"] == "jpeg"
    assert fields["image bytes"] == str(len(image))
    assert fields["width x height"] == "%d x %d" % (decoded.shape[1], decoded.shape[0])
    assert fields["class"] == "class_%d" % header.label
    assert 'src="/f/0/i/5"' in text and 'rel="prev" href="/f/0/r/4"' in text
    status, headers, body = request(server, "/f/0/i/5")
    assert status == 200 and headers["Content-Type"] == "image/jpeg"
    assert body == bytes(image)  # the stored bytes, as they are
    status, headers, body = request(server, "/f/0/t/5")
    thumb = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
    assert status == 200 and headers["Content-Type"] == "image/jpeg"
    assert max(thumb.shape[:2]) == 160
    source = server.browser.files[0].source
    before = source.bytes_read
    assert request(server, "/f/0/t/5")[2] == body and source.bytes_read == before  # cached
    small = cv2.resize(decoded, thumb.shape[1::-1], interpolation=cv2.INTER_AREA)
    assert np.abs(thumb.astype(float).mean((0, 1)) - small.mean((0, 1))).max() < 3


def test_filter_by_label_class_name_and_key_range(photos_rec, serve):
    server = serve(photos_rec)
    records = records_of(photos_rec)
    ones = [k for k, _, h, _ in records if h.label == 1]
    by_number = cards(page_text(server, "/f/0?label=1"))
    assert [k for _, k, _ in by_number] == ones and {lab for _, _, lab in by_number} == {"1"}
    assert cards(page_text(server, "/f/0?label=class_1")) == by_number
    both = cards(page_text(server, "/f/0?label=0,2"))
    assert sorted(k for _, k, _ in both) == sorted(k for k, _, h, _ in records if h.label != 1)
    lo, hi = sorted(k for k, _, _, _ in records)[4], sorted(k for k, _, _, _ in records)[11]
    ranged = cards(page_text(server, "/f/0?from=%d&to=%d" % (lo, hi)))
    assert sorted(k for _, k, _ in ranged) == [k for k in sorted(ones + [
        k for k, _, h, _ in records if h.label != 1]) if lo <= k <= hi]
    mixed = cards(page_text(server, "/f/0?label=1&from=%d&to=%d" % (lo, hi)))
    assert [k for _, k, _ in mixed] == [k for k in ones if lo <= k <= hi]
    status, _, body = request(server, "/f/0?label=dog")
    assert status == 400 and b"no class is named" in body
    status, _, body = request(server, "/f/0/key?k=%d" % records[3][0])
    assert status == 303
    status, _, body = request(server, "/f/0/key?k=999999")
    assert status == 404


def test_a_filter_reads_at_most_its_budget_of_headers_per_page(photos_rec, serve):
    server = serve(photos_rec, scan_budget=5, page_size=4)
    text = page_text(server, "/f/0?label=2")
    assert "records 0 to 4" in text and "(read 5 of 18)" in text
    nxt = re.search(r'rel="next" href="([^"]+)"', text).group(1).replace("&amp;", "&")
    assert "at=5" in nxt
    matched = []
    while True:
        matched += [k for _, k, _ in cards(text)]
        found = re.search(r'rel="next" href="([^"]+)"', text)
        if not found:
            break
        text = page_text(server, found.group(1).replace("&amp;", "&"))
    assert "(the end of the file)" in text
    assert matched == [k for k, _, h, _ in records_of(photos_rec) if h.label == 2]


def test_every_encoding_is_shown_as_a_picture_or_says_what_it_is(tmp_path, serve):
    rec = str(tmp_path / "mixed.rec")
    rgb = np.zeros((30, 40, 3), np.uint8)
    rgb[:, :20] = (250, 10, 10)  # red on the left, as stored (RGB)
    bmp = cv2.imencode(".bmp", np.full((7, 9, 3), 90, np.uint8))[1].tobytes()
    png = cv2.imencode(".png", np.full((12, 16, 3), 200, np.uint8))[1].tobytes()
    with rp.RecordFileWriter(rec, encoding=".npy") as w:
        w.write(rgb, [2, 5, 0.5], key=0)                                  # HWC uint8 .npy
        w.write(np.zeros((3, 8, 8), np.float32), 1.0, key=1)              # a float tensor
        w.write(bmp, 4.0, key=2)
        w.write(png, 7.0, key=3)
    server = serve(rec)
    text = page_text(server, "/f/0")
    assert [(k, lab) for _, k, lab in cards(text)] == [(0, "[2, 5, 0.5]"), (1, "1"), (2, "4"),
                                                       (3, "7")]
    status, headers, body = request(server, "/f/0/i/0")
    assert status == 200 and headers["Content-Type"] == "image/png"
    assert (cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR) == rgb[:, :, ::-1]).all()
    fields = dict(re.findall(r"<tr><th>([^<]+)</th><td>([^<]*)", page_text(server, "/f/0/r/0")))
    assert fields["format"] == "npy" and fields["width x height"] == "40 x 30"
    assert fields["array"] == "uint8 30x40x3" and fields["flag"] == "3"
    assert fields["label"] == "[2, 5, 0.5]"
    assert request(server, "/f/0/i/1")[0] == 404  # floats: no picture to draw
    status, headers, body = request(server, "/f/0/t/1")
    assert status == 200 and headers["Content-Type"] == "image/png"  # a grey "npy" cell
    assert (cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR) == 96).mean() > 0.9
    assert request(server, "/f/0/i/2")[1]["Content-Type"] == "image/bmp"
    assert request(server, "/f/0/i/3")[2] == png
    fields = dict(re.findall(r"<tr><th>([^<]+)</th><td>([^<]*)", page_text(server, "/f/0/r/2")))
    assert fields["format"] == "bmp" and fields["width x height"] == "9 x 7"


# ---- what it refuses --------------------------------------------------------------------------

def test_traversal_absolute_urls_foreign_hosts_and_writes_are_refused(photos_rec, serve):
    server = serve(photos_rec)
    port = server.port
    for target in ("/../../etc/passwd", "/f/0/../../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd",
                   "/f/0/r/..%2f..%2f..%2fetc%2fpasswd", "/f/0/i/%2e%2e", "//etc/passwd",
                   "/f/0/../../" + os.path.dirname(photos_rec).lstrip("/") + "/photos.lst",
                   "/app.css/../photos.rec", "/f/0/t/1/../../../../etc/passwd", "/f/0%00"):
        status, _, body = request(server, target)
        assert status == 404, target
        assert b"root:" not in body and b"class_0" not in body
    status, _, body = request(server, "http://127.0.0.1:%d/f/0" % port)
    assert status == 400 and b"must be a path" in body
    for host in ("evil.example:%d" % port, "127.0.0.1:%d" % (port + 1), "127.0.0.1",
                 "10.0.0.1:%d" % port, "", ["127.0.0.1:%d" % port, "evil.example"], []):
        status, _, body = request(server, "/f/0", host=host)
        assert status == 403, host
        assert b"data-key" not in body
    for host in ("localhost:%d" % port, "LOCALHOST:%d" % port, "[::1]:%d" % port):
        assert request(server, "/f/0", host=host)[0] == 200
    status, _, _ = request(server, "/f/0/i/0", headers=[("Sec-Fetch-Site", "cross-site")])
    assert status == 403
    assert request(server, "/f/0/i/0", headers=[("Sec-Fetch-Site", "same-origin")])[0] == 200
    for method in ("POST", "PUT", "DELETE", "PATCH", "OPTIONS", "BREW"):
        status, headers, _ = request(server, "/f/0", method=method)
        assert status == 405 and headers["Allow"] == "GET, HEAD", method
    status, headers, body = request(server, "/f/0", method="HEAD")
    assert status == 200 and body == b"" and int(headers["Content-Length"]) > 1000
    for target in ("/f/0/r/18", "/f/0/t/99999999", "/f/0/i/18", "/f/1", "/f/1/r/0",
                   "/f/0/identities", "/f/0/failures", "/favicon.ico", "/f/0/r/1x"):
        assert request(server, target)[0] == 404, target
    for target in ("/f/0?page=-1", "/f/0?page=abc", "/f/0?n=501", "/f/0?from=1e3",
                   "/f/0?label=nan", "/f/0?label=1e40", "/f/0/verify?run=rm",
                   "/f/0?" + "&".join(["a=1"] * 40)):
        assert request(server, target)[0] == 400, target
    status, headers, _ = request(server, "/f/0")
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    assert headers["X-Content-Type-Options"] == "nosniff"


def test_it_binds_to_loopback_by_default():
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert is_loopback("[::1]") and is_loopback("127.0.0.2")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4")
    assert not is_loopback("example.com")


# ---- big files, files without an index, damage ------------------------------------------------

def tiny_records(path, n):
    """``n`` records of 4 image bytes each (keys 0..n-1, labels key % 10), with an index,
    written straight as frames."""
    frame = np.dtype([("magic", "<u4"), ("lrec", "<u4"), ("flag", "<u4"), ("label", "<f4"),
                      ("id", "<u8"), ("id2", "<u8"), ("data", "S4")])
    rows = np.zeros(n, frame)
    rows["magic"], rows["lrec"] = MAGIC, 28
    rows["label"], rows["id"], rows["data"] = np.arange(n) % 10, np.arange(n), b"tiny"
    rows.tofile(path)
    with open(path[:-4] + ".idx", "w") as f:
        f.writelines("%d\t%d\n" % (k, k * frame.itemsize) for k in range(n))
    return path


def test_a_file_of_many_records_opens_and_pages_without_reading_them(tmp_path, serve):
    rec = tiny_records(str(tmp_path / "many.rec"), 200_000)
    server = serve(rec)
    source = server.browser.files[0].source
    assert source.bytes_read == 0  # opening read the index only
    got = cards(page_text(server, "/f/0"))
    assert [k for _, k, _ in got] == list(range(48))
    assert source.bytes_read <= 48 * 36 and source.reads <= 2 * 48
    last = cards(page_text(server, "/f/0?page=4166"))
    assert [k for _, k, _ in last] == list(range(199_968, 200_000))
    before = source.bytes_read
    text = page_text(server, "/f/0?label=11")  # no record has it: the budget bounds the read
    assert "(read 20000 of 200000)" in text and 'rel="next"' in text
    assert source.bytes_read - before <= 20_000 * 36
    assert "200000</b> records" in text


def test_a_file_without_an_index_is_walked_only_as_far_as_pages_need(photos_rec, tmp_path,
                                                                     serve):
    rec = str(tmp_path / "noidx.rec")
    shutil.copy(photos_rec, rec)
    server = serve(rec, page_size=5)
    bf = server.browser.files[0]
    assert not bf.indexed and bf.source.bytes_read == 0
    text = page_text(server, "/f/0")
    assert bf.count() == (6, False)  # one more than the page, to know there is a next
    assert "6+ (so far)" in text and "page 1 of ?" in text
    records = records_of(photos_rec)
    assert [k for _, k, _ in cards(text)] == [k for k, _, _, _ in records[:5]]
    assert bf.source.bytes_read < os.path.getsize(rec) / 2
    key, offset, header, image = records[17]
    fields = dict(re.findall(r"<tr><th>([^<]+)</th><td>([^<]*)", page_text(server,
                                                                          "/f/0/r/17")))
    assert fields["key"] == str(key) and fields["byte offset"] == str(offset)
    assert request(server, "/f/0/i/17")[2] == bytes(image)
    assert bf.count() == (18, True) and request(server, "/f/0/r/18")[0] == 404
    lo = sorted(k for k, _, _, _ in records)[9]
    assert sorted(k for _, k, _ in cards(page_text(server, "/f/0?from=%d&n=50" % lo))) == \
        sorted(k for k, _, _, _ in records if k >= lo)
    slow = serve(rec, page_size=5, scan_budget=4)  # 4 frames walked on per page at most
    reloads, text = 1, page_text(slow, "/f/0?page=2")
    while "read on" in text and reloads < 10:  # each reload reads on
        reloads, text = reloads + 1, page_text(slow, "/f/0?page=2")
    assert reloads == 4 and [k for _, k, _ in cards(text)] == [k for k, _, _, _ in records[10:15]]


def test_a_damaged_record_is_shown_as_damaged_and_the_rest_still_browse(photos_rec, tmp_path,
                                                                        serve):
    rec = str(tmp_path / "bad.rec")
    shutil.copy(photos_rec, rec)
    shutil.copy(photos_rec[:-4] + ".idx", rec[:-4] + ".idx")
    records = records_of(photos_rec)
    with open(rec, "r+b") as f:
        f.seek(records[2][1])
        f.write(b"\0\0\0\0")  # record 2 loses its magic word
    server = serve(rec)
    text = page_text(server, "/f/0")
    assert len(cards(text)) == 17 and 'class="card bad" href="/f/0/r/2"' in text
    assert "at byte %d" % records[2][1] in text
    page = page_text(server, "/f/0/r/2")
    assert "cannot be read" in page and "bad magic word" in page
    status, headers, body = request(server, "/f/0/t/2")
    assert status == 200 and headers["Content-Type"] == "image/png"  # a placeholder
    assert request(server, "/f/0/i/2")[0] == 500
    assert request(server, "/f/0/r/3")[0] == 200


# ---- InsightFace, failure reports, verify, parts, s3 -----------------------------------------

def test_insightface_files_by_identity(tmp_path, serve):
    root = tmp_path / "people"
    for person, n in (("alice", 3), ("bob", 2), ("carol", 4)):
        (root / person).mkdir(parents=True)
        for i in range(n):
            cv2.imwrite(str(root / person / ("%d.jpg" % i)),
                        np.full((60, 50, 3), 40 * i + len(person), np.uint8))
    for args in (("im2rec", "--list", "--recursive", tmp_path / "train", root),
                 ("im2rec", "--insightface", tmp_path / "train", root)):
        done = subprocess.run(recpack_cmd(*args), capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    server = serve(str(tmp_path / "train.rec"))
    text = page_text(server, "/f/0/identities")
    rows = re.findall(r'<a href="([^"]+)">(\d+) image\(s\)</a>, keys (\d+) to (\d+)', text)
    assert [(int(n), int(a), int(b)) for _, n, a, b in rows] == [(3, 1, 3), (2, 4, 5),
                                                                 (4, 6, 9)]
    assert "InsightFace layout: 9 images, 3 identities" in text
    bob = cards(page_text(server, rows[1][0].replace("&amp;", "&")))
    assert [(k, lab) for _, k, lab in bob] == [(4, "1"), (5, "1")]  # keys 4, 5: identity 1
    header = page_text(server, "/f/0/r/%d" % server.browser.files[0].positions_of([0])[0])
    assert "the header record: images are keys 1 to 9, identities keys 10 to 12" in header
    assert "A label-only record: no image." in header
    assert request(server, "/f/0/i/%d" % server.browser.files[0].positions_of([0])[0])[0] == 404
    assert "identity record 1: " in page_text(server, "/f/0/r/%d" % (
        server.browser.files[0].positions_of([11])[0]))


def test_the_failure_report_beside_the_file(tmp_path, serve):
    files = rp.samples.make_image_folder(str(tmp_path / "img"), classes=1, per_class=4,
                                         long_side=(60, 90))
    write_lst(tmp_path / "d.lst", [(i, 0, f) for i, f in enumerate(files)] +
              [(99, 0, "gone.jpg")])
    rec = rp.im2rec(str(tmp_path / "d.lst"), dataset_params={"root": str(tmp_path / "img")})
    server = serve(rec)
    assert 'href="/f/0/failures"' in page_text(server, "/f/0")
    text = page_text(server, "/f/0/failures")
    assert "<b>1</b> item(s) skipped" in text and "gone.jpg" in text and "d.failures.jsonl" in text


def test_verify_runs_in_the_background_and_pages_do_not_wait(photos_rec, tmp_path, serve):
    release, calls = threading.Event(), []

    def slow(path, quick):
        calls.append((path, quick))
        assert release.wait(30)
        return verifier(path, quick)

    rec = str(tmp_path / "v.rec")
    shutil.copy(photos_rec, rec)
    shutil.copy(photos_rec[:-4] + ".idx", rec[:-4] + ".idx")
    with open(rec, "r+b") as f:  # the last image loses its end: verify finds it
        f.truncate(os.path.getsize(rec) - 400)
    server = serve(rec, verifier=slow)
    assert "reads the whole file" in page_text(server, "/f/0/verify")
    status, headers, _ = request(server, "/f/0/verify?run=full")
    assert status == 303 and headers["Location"] == "/f/0/verify"
    text = page_text(server, "/f/0/verify")
    assert "Verifying (full)" in text and 'http-equiv="refresh"' in text
    grid = page_text(server, "/f/0")  # while verify runs
    assert len(cards(grid)) == 17 and 'class="card bad" href="/f/0/r/17"' in grid
    assert "Another verify is running" in page_text(server, "/f/0/verify?run=quick")
    assert calls == [(rec, False)]
    release.set()
    deadline = time.monotonic() + 30
    while "Verifying" in text and time.monotonic() < deadline:
        time.sleep(0.05)
        text = page_text(server, "/f/0/verify")
    assert "problem(s)</b>" in text and "truncated" in text
    key = records_of(photos_rec)[-1][0]
    assert '<a href="/f/0/key?k=%d">%d</a>' % (key, key) in text


def test_parts_are_files_of_their_own_with_the_class_names_of_their_list(photos_rec, tmp_path,
                                                                         serve):
    rp.split(photos_rec, str(tmp_path / "all"), nsplit=2)
    shutil.copy(photos_rec[:-4] + ".classes.tsv", tmp_path / "all.classes.tsv")
    paths = browse_paths([str(tmp_path / "all.rec")])  # no all.rec: its parts
    assert paths == [str(tmp_path / "all.part000.rec"), str(tmp_path / "all.part001.rec")]
    assert browse_paths([str(tmp_path / "all.part*.rec")]) == paths
    server = serve(paths)
    text = page_text(server, "/")
    assert 'href="/f/0">all.part000.rec' in text and 'href="/f/1">all.part001.rec' in text
    first, second = cards(page_text(server, "/f/0")), cards(page_text(server, "/f/1"))
    assert [k for _, k, _ in first + second] == [k for k, _, _, _ in records_of(photos_rec)]
    assert "3 class names from all.classes.tsv" in page_text(server, "/f/1")
    assert classes_path_candidates("d/x_train.part002.rec") == [
        "d/x_train.part002.classes.tsv", "d/x_train.classes.tsv", "d/x.classes.tsv"]
    assert classes_path_candidates("d/x_3_val.rec")[-1] == "d/x.classes.tsv"


@pytest.mark.s3
def test_browse_a_file_on_s3(photos_rec, serve, s3):
    fs, bucket = s3
    for suffix in (".rec", ".idx", ".classes.tsv"):
        fs.put_file(photos_rec[:-4] + suffix, "%s/photos%s" % (bucket, suffix))
    server = serve("s3://%s/photos.rec" % bucket, page_size=4)
    records = records_of(photos_rec)
    text = page_text(server, "/f/0?page=1")
    assert [k for _, k, _ in cards(text)] == [k for k, _, _, _ in records[4:8]]
    assert "3 class names from photos.classes.tsv" in text
    assert request(server, "/f/0/i/7")[2] == bytes(records[7][3])
    assert server.browser.files[0].source.bytes_read < 4 * 4096 + 2 * len(records[7][3])
    assert [k for _, k, _ in cards(page_text(server, "/f/0?label=1&n=50"))] == [
        k for k, _, h, _ in records if h.label == 1]


def test_the_command_prints_the_address_and_ctrl_c_ends_it_quietly(photos_rec):
    proc = subprocess.Popen(recpack_cmd("browse", photos_rec, "--page-size", "6"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        url = re.search(r"at (http://127\.0\.0\.1:(\d+)/)", line)
        assert url, line
        conn = http.client.HTTPConnection("127.0.0.1", int(url.group(2)), timeout=30)
        conn.request("GET", "/f/0")
        response = conn.getresponse()
        assert response.status == 200 and len(cards(response.read().decode())) == 6
        conn.close()
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0 and err == "", err
    done = subprocess.run(recpack_cmd("browse", photos_rec, "--page-size", "0"),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "--page-size must be 1 to 500" in done.stderr
    done = subprocess.run(recpack_cmd("browse", photos_rec + ".gone"), capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 1 and "no such file" in done.stderr


# ---- in a real browser ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def chromium():
    """Debian's chromium, headless, driven by Playwright (no browser of Playwright's own);
    ``evil.example`` resolves to 127.0.0.1 in it, as a DNS-rebinding page would."""
    from playwright.sync_api import sync_playwright
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=path, headless=True, args=[
            "--no-sandbox", "--host-resolver-rules=MAP evil.example 127.0.0.1"])
        yield browser
        browser.close()


def wait_for(page, expression, seconds=30):
    """Poll ``expression`` in the page until it is true (the pages' Content-Security-Policy
    forbids the string evaluation Playwright's wait_for_function uses)."""
    deadline = time.monotonic() + seconds
    while not page.evaluate("() => " + expression):
        assert time.monotonic() < deadline, expression
        time.sleep(0.05)


def images_loaded(page):
    """Wait until every image of the page has loaded; True when each one has pixels."""
    wait_for(page, "Array.from(document.images).every(i => i.complete)")
    return page.evaluate("() => Array.from(document.images).every(i => i.naturalWidth > 0)")


def shown(locator):
    """The pixels of an element as Chromium drew it (BGR)."""
    return cv2.imdecode(np.frombuffer(locator.screenshot(), np.uint8), cv2.IMREAD_COLOR)


def central(img):
    """The middle of a picture: an element's screenshot may take in a column of its
    surroundings where the layout puts it between pixels."""
    h, w = img.shape[:2]
    return img[h // 10:h - h // 10, w // 10:w - w // 10]


def decoded(image, shape=None):
    img = cv2.imdecode(np.frombuffer(bytes(image), np.uint8), cv2.IMREAD_COLOR)
    return img if shape is None else cv2.resize(img, shape[1::-1], interpolation=cv2.INTER_AREA)


@pytest.mark.browser
def test_in_chromium_page_through_filter_open_a_record_and_see_the_images(photos_rec, serve,
                                                                         chromium):
    server = serve(photos_rec, page_size=8)
    records = records_of(photos_rec)
    keys = [k for k, _, _, _ in records]
    page = chromium.new_page(viewport={"width": 1200, "height": 1800})
    page.goto(server.url)
    assert page.url == server.url + "f/0" and images_loaded(page)

    def on_page(attribute):
        return page.locator("a.card").evaluate_all(
            "(cards, a) => cards.map(c => c.getAttribute(a))", attribute)

    assert [int(k) for k in on_page("data-key")] == keys[:8]
    for i, card in enumerate(page.locator("a.card img").all()[:4]):  # the thumbnails drawn
        pixels = shown(card)
        assert pixels.std() > 20 and abs(max(pixels.shape[:2]) - 160) <= 1
        expected = central(decoded(records[i][3], pixels.shape)).mean((0, 1))
        assert np.abs(central(pixels).mean((0, 1)) - expected).max() < 4, (i, expected)
    page.keyboard.press("ArrowRight")  # the page's script follows its "next" link
    page.wait_for_url("**/f/0?page=1")
    assert [int(k) for k in on_page("data-key")] == keys[8:16] and images_loaded(page)
    page.locator('a[rel="next"]').click()
    page.wait_for_url("**/f/0?page=2")
    assert [int(k) for k in on_page("data-key")] == keys[16:]

    page.fill('#filter input[name="label"]', "class_2")
    page.click('#filter button[type="submit"]')
    page.wait_for_url("**label=class_2**")
    assert set(on_page("data-label")) == {"2"} and images_loaded(page)
    assert [int(k) for k in on_page("data-key")] == [k for k, _, h, _ in records
                                                     if h.label == 2][:8]
    assert "class_2" in page.locator("a.card").first.inner_text()

    page.locator("a.card").nth(1).click()
    page.wait_for_url("**/f/0/r/*")
    pos = int(page.url.rsplit("/", 1)[1])
    key, offset, header, image = records[pos]
    assert header.label == 2 and images_loaded(page)
    full = decoded(image)
    assert page.eval_on_selector("#full", "i => [i.naturalWidth, i.naturalHeight]") == \
        [full.shape[1], full.shape[0]]
    pixels = shown(page.locator("#full"))
    assert np.abs(np.subtract(pixels.shape[:2], full.shape[:2])).max() <= 1
    assert pixels.std() > 20
    same = central(decoded(image, pixels.shape)).astype(float)
    assert np.abs(central(pixels) - same).mean() < 6  # the photo, as stored
    text = page.locator("table.fields").inner_text()
    assert "byte offset\t%d" % offset in text and "class\tclass_2" in text


@pytest.mark.browser
def test_in_chromium_foreign_hosts_other_sites_and_traversal_are_refused(photos_rec, serve,
                                                                         chromium):
    server = serve(photos_rec)
    page = chromium.new_page()
    response = page.goto("http://evil.example:%d/f/0" % server.port)  # DNS rebinding
    assert response.status == 403 and "not for Host 'evil.example:%d'" % server.port in \
        page.content()
    assert page.locator("a.card").count() == 0
    for path in ("f/0/../../../etc/passwd", "%2e%2e/%2e%2e/etc/passwd", "f/0/r/%2e%2e%2f1"):
        response = page.goto(server.url + path)
        assert response.status == 404 and "root:" not in page.content(), path
    page.goto("about:blank")  # another site's page showing this server's pictures: refused
    page.set_content('<img id="x" src="%sf/0/t/0">' % server.url)
    wait_for(page, "document.getElementById('x').complete")
    assert page.evaluate("() => document.getElementById('x').naturalWidth") == 0
    page.goto(server.url + "f/0")
    assert images_loaded(page)  # the same picture on the server's own page


@pytest.mark.browser
def test_in_chromium_the_screenshot_of_the_sample_photos(photos_rec, serve, chromium, tmp_path):
    """The README's picture: the sample photos with their class names. With
    RECPACK_BROWSE_SCREENSHOT=PATH it is written there too."""
    server = serve(photos_rec, page_size=18)
    page = chromium.new_page(viewport={"width": 1240, "height": 820})
    page.goto(server.url + "f/0")
    assert images_loaded(page)
    out = str(tmp_path / "browse.png")
    page.screenshot(path=out)
    shot = cv2.imread(out)
    assert shot.shape[:2] == (820, 1240)
    grid = shot[230:, :]  # below the header and the filter form: thumbnails
    assert grid.std() > 30 and len(np.unique(grid.reshape(-1, 3), axis=0)) > 5000
    target = os.environ.get("RECPACK_BROWSE_SCREENSHOT")
    if target:
        shutil.copy(out, target)
