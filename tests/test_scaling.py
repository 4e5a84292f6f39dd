"""Beyond one file and one machine: parts, S3 (a real SeaweedFS server on loopback) and a real
dask.distributed LocalCluster. Every output is byte-compared with a local single-machine run and
read back with ImageRecordIter."""
import os

import mxnet as mx
import numpy as np
import pytest

import mxnet_recpack as rp
from helpers import keys_of, read, recpack_cmd, run_all, write_lst
from mxnet_recpack.cli import main as recpack_main

pytestmark = pytest.mark.mxnet  # read back with MXNet's own readers




def iter_count(rec):
    it = mx.io.ImageRecordIter(path_imgrec=rec, path_imgidx=rec[:-4] + ".idx",
                               data_shape=(3, 32, 32), batch_size=4, resize=32)
    return sum(4 - b.pad for b in it)




@pytest.fixture(scope="module")
def photos_list(tmp_path_factory):
    """14 photos in 2 classes and a shuffled .lst over them."""
    root = tmp_path_factory.mktemp("scale")
    files = rp.samples.make_image_folder(str(root), classes=2, per_class=7, long_side=(90, 160),
                                         seed=11)
    order = np.random.RandomState(2).permutation(len(files))
    rows = [(int(100 + 7 * i), int(files[i].startswith("class_1")), files[i]) for i in order]
    lst = write_lst(root / "data.lst", rows)
    return str(root), lst, rows


# ---- parts --------------------------------------------------------------------------------------

def test_parts_follow_im2rec_cc_byte_positions(tmp_path):
    """4 lines of exactly 10 bytes, 3 parts: dmlc cuts the 40 bytes at 14 and 28, and each line
    goes to the part holding the newline before it -> lines {0, 1}, {2}, {3}."""
    images = tmp_path / "img"
    images.mkdir()
    import cv2
    for i in range(4):
        cv2.imwrite(str(images / ("%d.png" % i)), np.full((8, 8, 3), 60 * i, np.uint8))
    lst = tmp_path / "d.lst"
    lst.write_text("".join("%d\t%d\t%d.png\n" % (i, i % 2, i) for i in range(4)))
    assert all(len(line) == 10 for line in lst.read_text().splitlines(keepends=True))
    paths = rp.im2rec(str(lst), None, {"root": str(images), "nsplit": 3}, str(tmp_path / "d"))
    assert paths == [str(tmp_path / ("d.part%03d.rec" % k)) for k in range(3)]
    assert [keys_of(p) for p in paths] == [[0, 1], [2], [3]]


def test_parts_are_complete_disjoint_and_identical_when_written_alone(tmp_path, photos_list):
    root, lst, rows = photos_list
    full = rp.im2rec(lst, None, {"root": root, "nsplit": 4, "resize": 40, "num_thread": 2},
                     str(tmp_path / "full"))
    assert len(full) == 4
    union = []
    for path in full:
        keys = keys_of(path)
        assert iter_count(path) == len(keys)
        assert rp.verify(path) == (len(keys), [])
        union += keys
    assert union == [k for k, _, _ in rows]  # every record once, in list order
    alone = rp.im2rec(lst, None, {"root": root, "nsplit": 4, "part": 2, "resize": 40},
                      str(tmp_path / "alone"))
    assert alone == str(tmp_path / "alone.part002.rec")
    assert read(alone) == read(full[2]) and read(alone[:-4] + ".idx") == read(full[2][:-4] + ".idx")
    assert not os.path.exists(tmp_path / "alone.part001.rec")


def test_cli_nsplit_part(tmp_path, photos_list):
    root, lst, _ = photos_list
    (tmp_path / "data.lst").write_bytes(read(lst))
    assert recpack_main(["im2rec", "-q", "--nsplit", "3", "--part", "1", str(tmp_path / "data"),
                         root]) == 0
    assert sorted(p for p in os.listdir(tmp_path) if p.endswith(".rec")) == ["data.part001.rec"]
    ref = rp.im2rec(lst, None, {"root": root, "nsplit": 3}, str(tmp_path / "ref"))
    assert read(tmp_path / "data.part001.rec") == read(ref[1])
    assert recpack_main(["im2rec", "-q", "--nsplit", "3", "--part", "3", str(tmp_path / "data"),
                         root]) == 1


def test_generic_dataset_parts(tmp_path, photos):
    ds = rp.ArrayDataset([p[:32, :40] for _, p in photos], np.arange(len(photos)) % 3)
    whole = ds.to_recordio(str(tmp_path / "whole.rec"))
    parts = ds.to_recordio(str(tmp_path / "p.rec"), nsplit=3, num_workers=2)
    assert [os.path.basename(p) for p in parts] == ["p.part000.rec", "p.part001.rec",
                                                    "p.part002.rec"]
    assert sum((keys_of(p) for p in parts), []) == keys_of(whole) == list(range(len(photos)))
    one = ds.to_recordio(str(tmp_path / "one.rec"), nsplit=3, part=1)
    assert read(one) == read(parts[1])
    with pytest.raises(rp.OptionError,
                       match=r"part = 5 is not valid; expected an integer in \[0, nsplit\)"):
        ds.to_recordio(str(tmp_path / "bad.rec"), nsplit=3, part=5)


# ---- S3 -----------------------------------------------------------------------------------------

def upload_folder(fs, local_root, url):
    for dirpath, _, files in os.walk(local_root):
        for name in files:
            rel = os.path.relpath(os.path.join(dirpath, name), local_root).replace(os.sep, "/")
            fs.put_file(os.path.join(dirpath, name), url + "/" + rel)


@pytest.mark.s3
def test_s3_root_list_and_output_byte_identical_to_local(tmp_path, photos_list, s3):
    fs, bucket = s3
    root, lst, rows = photos_list
    upload_folder(fs, root, "s3://%s/images" % bucket)
    params = {"resize": 48, "num_thread": 2}
    local = rp.im2rec(lst, None, dict(params, root=root), str(tmp_path / "local"))
    out = rp.im2rec("s3://%s/images/data.lst" % bucket, None,
                    dict(params, root="s3://%s/images" % bucket), "s3://%s/out/train" % bucket)
    assert out == "s3://%s/out/train.rec" % bucket
    assert fs.cat_file(out) == read(local)
    assert fs.cat_file(out[:-4] + ".idx") == read(local[:-4] + ".idx")
    fs.get_file(out, str(tmp_path / "got.rec"))
    fs.get_file(out[:-4] + ".idx", str(tmp_path / "got.idx"))
    assert iter_count(str(tmp_path / "got.rec")) == len(rows)


@pytest.mark.s3
def test_s3_storage_options_parts_and_atomic_output(tmp_path, photos_list, s3, monkeypatch):
    fs, bucket = s3
    root, lst, rows = photos_list
    options = {"key": os.environ["AWS_ACCESS_KEY_ID"],
               "secret": os.environ["AWS_SECRET_ACCESS_KEY"],
               "client_kwargs": {"endpoint_url": os.environ["AWS_ENDPOINT_URL"],
                                 "region_name": "us-east-1"}}
    monkeypatch.delenv("AWS_ENDPOINT_URL")  # only storage_options say where the server is
    import s3fs
    s3fs.S3FileSystem.clear_instance_cache()
    parts = rp.im2rec(lst, None, {"root": root, "nsplit": 2, "storage_options": options},
                      "s3://%s/parts/train" % bucket)
    local = rp.im2rec(lst, None, {"root": root, "nsplit": 2}, str(tmp_path / "train"))
    fs = s3fs.S3FileSystem(**options)
    for url, path in zip(parts, local):
        assert fs.cat_file(url) == read(path)
    # a failing run puts nothing at the final URL
    bad = tmp_path / "bad.lst"
    bad.write_text(read(lst).decode() + "999\t0\tmissing.jpg\n")
    with pytest.raises(rp.TooManyFailuresError, match="more than max_failures=0"):
        rp.im2rec(str(bad), None, {"root": root, "max_failures": 0,
                                   "storage_options": options}, "s3://%s/bad/x" % bucket)
    assert not fs.exists("%s/bad/x.rec" % bucket)
    assert fs.exists("%s/bad/x.failures.jsonl" % bucket)


@pytest.mark.s3
def test_s3_cli_and_to_recordio(tmp_path, photos_list, photos, s3):
    fs, bucket = s3
    root, lst, rows = photos_list
    fs.put_file(lst, "%s/lists/data.lst" % bucket)  # the subprocess gets the AWS_* variables
    code, out, err = run_all([recpack_cmd("im2rec", "--pass-through", "s3://%s/lists/data" % bucket,
                                          root)])[0]
    assert code == 0, err
    assert "s3://%s/lists/data.rec: %d records" % (bucket, len(rows)) in out
    ref = rp.im2rec(lst, None, {"root": root, "pass_through": True}, str(tmp_path / "ref"))
    assert fs.cat_file("%s/lists/data.rec" % bucket) == read(ref)
    ds = rp.ArrayDataset([p[:20, :20] for _, p in photos[:4]], [0, 1, 2, 3])
    url = ds.to_recordio("s3://%s/arrays/a.rec" % bucket)
    assert fs.cat_file(url) == read(ds.to_recordio(str(tmp_path / "a.rec")))


# ---- Dask ---------------------------------------------------------------------------------------

@pytest.mark.dask
def test_dask_parts_byte_identical_to_local(tmp_path, photos_list, dask_client):
    root, lst, rows = photos_list
    seen = []
    params = {"root": root, "nsplit": 3, "resize": 40}
    remote = rp.im2rec(lst, None, dict(params, dask=dask_client,
                                       progress=lambda d, t: seen.append((d, t))),
                       str(tmp_path / "dask"))
    local = rp.im2rec(lst, None, params, str(tmp_path / "local"))
    for a, b in zip(remote, local):
        assert read(a) == read(b) and read(a[:-4] + ".idx") == read(b[:-4] + ".idx")
        assert iter_count(a) == len(keys_of(b))
    assert seen[-1] == (len(rows), len(rows))
    assert len(seen) == 3  # one report per finished part


@pytest.mark.dask
def test_dask_scheduler_address_failures_and_gluon_transforms(tmp_path, photos_list,
                                                              dask_client):
    from mxnet.gluon.data.vision import transforms
    root, lst, rows = photos_list
    bad = tmp_path / "data.lst"
    bad.write_text(read(lst).decode() + "999\t0\tmissing.jpg\n")
    address = dask_client.scheduler.address
    assert address.startswith("tcp://127.0.0.1:")
    summaries = rp.pack.run_im2rec(str(bad), transforms.CenterCrop(32),
                                  {"root": root, "nsplit": 2, "dask": address},
                                  str(tmp_path / "t"))
    assert sum(s.written for s in summaries) == len(rows)
    assert [s.failed for s in summaries] == [0, 1]
    report = summaries[1].report_path
    assert "missing.jpg" in open(report).read()
    code, out, err = run_all([recpack_cmd("im2rec", "--nsplit", "2", "--dask", address,
                                          tmp_path / "data", root)])[0]
    assert code == 0, err
    assert "skipped 1 bad image(s)" in out


@pytest.mark.dask
def test_dask_generic_dataset(tmp_path, photos, dask_client):
    ds = rp.ArrayDataset([p[:24, :24] for _, p in photos], np.arange(len(photos)))
    remote = ds.to_recordio(str(tmp_path / "d.rec"), nsplit=2, dask=dask_client)
    local = ds.to_recordio(str(tmp_path / "l.rec"), nsplit=2)
    assert [read(p) for p in remote] == [read(p) for p in local]
