"""What ``recpack convert`` writes is read by each format's own library (and DALI where it has a
reader): every record's image bytes, label and key, in order, from a photo ``.rec``."""
import glob
import os

import numpy as np
import pytest

from mxnet_recpack.cli import main
from mxnet_recpack.sources.records import RecordSet
from mxnet_recpack.formats.sample import sample_from_payload
from test_convert import _jpg
from test_format_mds import streaming_module

pytestmark = pytest.mark.formats


@pytest.fixture(scope="module")
def photo_rec(tmp_path_factory, photos):
    from mxnet_recpack import RecordFileWriter
    folder = tmp_path_factory.mktemp("photos")
    with RecordFileWriter(str(folder / "p.rec")) as w:
        for i in range(12):
            w.write(_jpg(photos[i % len(photos)][1], 40 + 4 * i), float(i % 4), key=100 + i)
    records = RecordSet(str(folder / "p.rec"))
    samples = [sample_from_payload(int(records.keys[i]), records.payload(i))
               for i in range(len(records))]
    return str(folder / "p.rec"), samples


def _convert(rec, out, *args):
    assert main(["convert", rec, out, "-q"] + list(args)) == 0


def test_webdataset_and_dali_read_every_record(tmp_path, photo_rec):
    import cv2
    import webdataset as wds
    from nvidia.dali import fn, pipeline_def
    rec, samples = photo_rec
    _convert(rec, str(tmp_path / "w"), "--to", "webdataset", "--shard-size", "5")
    shards = sorted(glob.glob(str(tmp_path / "w" / "*.tar")))
    assert len(shards) == 3
    got = list(wds.WebDataset(shards, shardshuffle=False).decode("rgb"))
    assert [int(s["__key__"]) for s in got] == [s.key for s in samples]
    for mine, sample in zip(got, samples):
        assert mine["cls"] == int(sample.label) and mine["json"]["key"] == sample.key
        want = cv2.cvtColor(cv2.imdecode(np.frombuffer(sample.image, np.uint8), 1),
                            cv2.COLOR_BGR2RGB)
        assert np.abs((mine["jpg"] * 255).round().astype(int) - want).max() <= 1

    @pipeline_def(batch_size=len(samples), num_threads=1, device_id=None)
    def pipe():
        jpg, cls = fn.readers.webdataset(paths=shards, ext=["jpg", "cls"], random_shuffle=False)
        return jpg, cls

    p = pipe()
    p.build()
    jpg, cls = p.run()
    assert [np.array(jpg.at(i)).tobytes() for i in range(len(samples))] == \
        [s.image for s in samples]
    assert [int(bytes(np.array(cls.at(i)))) for i in range(len(samples))] == \
        [int(s.label) for s in samples]


def test_datasets_reads_the_parquet_files_with_its_image_feature(tmp_path, photo_rec):
    import datasets
    rec, samples = photo_rec
    _convert(rec, str(tmp_path / "pq"), "--to", "parquet", "--shard-size", "5")
    files = sorted(glob.glob(str(tmp_path / "pq" / "*.parquet")))
    assert [os.path.basename(f) for f in files] == ["train-%05d-of-00003.parquet" % i
                                                     for i in range(3)]
    ds = datasets.load_dataset("parquet", data_files=files, split="train",
                               cache_dir=str(tmp_path / "hf"))
    assert isinstance(ds.features["image"], datasets.Image)
    assert ds["key"] == [s.key for s in samples] and ds["label"] == [int(s.label)
                                                                     for s in samples]
    raw = ds.cast_column("image", datasets.Image(decode=False))
    assert [r["bytes"] for r in raw["image"]] == [s.image for s in samples]
    assert ds[3]["image"].size[0] == 52  # decoded by datasets' Image(): 40 + 4 * 3 wide


def test_streaming_reads_the_mds_folder(tmp_path, photo_rec):
    cls = streaming_module("streaming.base.dataset").StreamingDataset
    rec, samples = photo_rec
    _convert(rec, str(tmp_path / "m"), "--to", "mds", "--shard-bytes", "4k")
    assert len(glob.glob(str(tmp_path / "m" / "shard.*.mds"))) >= 2
    ds = cls(local=str(tmp_path / "m"), remote=None, shuffle=False, batch_size=1)
    got = [ds[i] for i in range(len(ds))]
    assert [int(g["key"]) for g in got] == [s.key for s in samples]
    assert [bytes(g["image"]) for g in got] == [s.image for s in samples]
    assert [float(np.asarray(g["label"]).reshape(-1)[0]) for g in got] == \
        [float(s.label) for s in samples]


def test_the_tfrecord_package_and_dali_read_the_tfrecords(tmp_path, photo_rec):
    from nvidia.dali import fn, pipeline_def, tfrecord as tfrec
    from tfrecord.reader import tfrecord_loader
    rec, samples = photo_rec
    _convert(rec, str(tmp_path / "t"), "--to", "tfrecord", "--shard-size", "7")
    shards = sorted(glob.glob(str(tmp_path / "t" / "*.tfrecord")))
    got = [r for s in shards for r in tfrecord_loader(s, s[:-9] + ".tfindex", shard=(0, 1))]
    assert [bytes(r["image/encoded"]) for r in got] == [s.image for s in samples]
    assert [int(r["image/class/label"][0]) for r in got] == [int(s.label) for s in samples]

    @pipeline_def(batch_size=len(samples), num_threads=1, device_id=None)
    def pipe():
        out = fn.readers.tfrecord(path=shards, index_path=[s[:-9] + ".tfindex" for s in shards],
                                  features={"image/encoded": tfrec.FixedLenFeature(
                                      (), tfrec.string, ""), "image/class/label":
                                      tfrec.FixedLenFeature([1], tfrec.int64, -1)},
                                  random_shuffle=False)
        return out["image/encoded"], out["image/class/label"]

    p = pipe()
    p.build()
    images, labels = p.run()
    assert [np.array(images.at(i)).tobytes() for i in range(len(samples))] == \
        [s.image for s in samples]
    assert [int(np.array(labels.at(i))[0]) for i in range(len(samples))] == \
        [int(s.label) for s in samples]


def test_a_datasets_dataset_object_converts_to_a_pair(tmp_path, photo_rec, real_reader):
    import datasets
    _, samples = photo_rec
    ds = datasets.Dataset.from_dict({
        "image": [{"bytes": s.image, "path": None} for s in samples],
        "label": [int(s.label) for s in samples]}).cast_column("image", datasets.Image())
    from mxnet_recpack import convert
    rec = str(tmp_path / "hf.rec")
    assert convert(ds.select(range(2, 8)), rec).written == 6
    got = real_reader(rec)
    assert [(g[0], g[1]) for g in got] == [(float(s.label), s.image) for s in samples[2:8]]
