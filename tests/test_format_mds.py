"""MDS (MosaicML streaming's shards): recpack's codec against streaming's own reader and writer.

What users rely on: every field of every record survives ``.rec -> MDS -> .rec`` byte for
byte; streaming's ``StreamingDataset`` reads the shards recpack writes (every sample: image
bytes, labels, keys, ids); recpack writes what ``MDSWriter`` writes, byte for byte; datasets
``MDSWriter`` wrote are read by the documented rule; damage is an error naming file and offset.

The tests marked ``formats`` need ``mosaicml-streaming`` installed with ``--no-deps`` plus the
modules its reader imports (see :func:`streaming_module`).
"""
import importlib
import importlib.util
import json
import os
import struct
import sys
import types

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import read as read_bytes
from mxnet_recpack.errors import ImageEncodeError, OptionError, OutputError, RecordFormatError
from mxnet_recpack.format import RecordFile
from mxnet_recpack.format.header import label_only_record, pack_record
from mxnet_recpack.formats.mds import (ShardWriter, check, columns, encode, index_json, read,
                                       scan, shard_basename)
from mxnet_recpack.formats.sample import Sample, payload_of, sample_from_payload
from mxnet_recpack.pipeline.writer import RecordFileWriter


def streaming_module(name):
    """A module of MosaicML streaming, imported without running ``streaming/__init__.py`` and
    ``streaming/base/__init__.py``: those only re-export, and import ``streaming.vision``
    (torchvision, whose PyPI wheels are CUDA builds that do not load beside CPU torch) and
    ``StreamingDataLoader`` (transformers, for two type names). ``StreamingDataset``,
    ``MDSWriter`` and everything they call run as they are."""
    if "streaming" not in sys.modules:
        spec = importlib.util.find_spec("streaming")
        if spec is None:
            raise ImportError("the formats tests need MosaicML streaming: pip install --no-deps "
                              "mosaicml-streaming==0.13.0 Brotli python-snappy cramjam zstd "
                              "'xxhash<4' catalogue (beside torch and pillow)")
        root = os.path.dirname(spec.origin)
        for package, path in (("streaming", root), ("streaming.base", os.path.join(root, "base"))):
            module = types.ModuleType(package)
            module.__path__ = [path]
            sys.modules[package] = module
    return importlib.import_module(name)


def _encoded(photo, ext, side):
    scale = side / max(photo.shape[:2])
    small = cv2.resize(photo, (max(1, int(photo.shape[1] * scale)),
                               max(1, int(photo.shape[0] * scale))), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(ext, cv2.cvtColor(small, cv2.COLOR_RGB2BGR))
    assert ok
    return buf.tobytes()


@pytest.fixture(scope="module")
def images(photos):
    """Real photos as JPEG and PNG bytes."""
    return {"jpeg": [_encoded(p, ".jpg", 96 + 8 * i) for i, (_, p) in enumerate(photos[:4])],
            "png": [_encoded(p, ".png", 64 + 8 * i) for i, (_, p) in enumerate(photos[4:6])]}


def _records(images):
    """``(key, payload)`` of every kind of record RecordIO holds."""
    jpg, png = images["jpeg"], images["png"]
    f32 = np.float32
    odd_head = struct.pack("<IfQQ", 2, 7.0, 12, 3) + np.array([1, 2], "<f4").tobytes()
    nan_bits = struct.pack("<IfQQ", 1, 0.0, 13, 0) + struct.pack("<I", 0x7FC12345)
    return [
        (0, pack_record(3.0, 0, jpg[0])),                                # class id
        (1, pack_record(0.25, 1, png[0])),                               # a float label
        (7, pack_record(np.array([1, 2.5, -3], f32), 7, jpg[1])),        # a label vector
        (2 ** 64 - 1, label_only_record([10, 20], 2 ** 64 - 1, id2=1)),  # label-only, top key
        (42, pack_record(1.0, 99, b"not an image at all", id2=5)),       # id != key, other
        (12, odd_head + png[1]),                                         # header kept whole
        (13, nan_bits + jpg[2]),                                         # NaN bits of its own
        (14, pack_record(-0.0, 14, jpg[3])),
        (15, pack_record(2.0 ** 24, 15, b"")),
    ]


def _samples(images):
    return [sample_from_payload(key, payload) for key, payload in _records(images)]


def _same(a, b):
    """Every field equal; labels as float32 bits and the same kind (a float or an array)."""
    assert (a.key, a.flag, a.id, a.id2, bytes(a.image), a.head) == (
        b.key, b.flag, b.id, b.id2, bytes(b.image), b.head)
    assert isinstance(a.label, float) == isinstance(b.label, float) == (a.flag == 0)
    assert np.asarray(a.label, "<f4").tobytes() == np.asarray(b.label, "<f4").tobytes()
    assert payload_of(a) == payload_of(b)


def write_dataset(root, samples, *, per_shard=4, image_encoding="bytes", size_limit=None,
                  hashes=()):
    """``samples`` as an MDS dataset in ``root``, ``per_shard`` to a shard (temporary names,
    renamed as a runner does)."""
    os.makedirs(root, exist_ok=True)
    shards = []
    for n, start in enumerate(range(0, len(samples), per_shard)):
        tmp = os.path.join(root, ".writing.%d" % n)
        w = ShardWriter(tmp, image_encoding=image_encoding, size_limit=size_limit, hashes=hashes)
        w.append([encode(s, image_encoding) for s in samples[start:start + per_shard]])
        shards.append((shard_basename(n), w.close()))
        os.rename(tmp, os.path.join(root, shard_basename(n)))
    with open(os.path.join(root, "index.json"), "wb") as f:
        f.write(index_json(shards))
    return root


def test_every_field_of_every_kind_of_record_survives(tmp_path, images):
    samples = _samples(images)
    assert [s.head is not None for s in samples].count(True) >= 1
    root = write_dataset(str(tmp_path / "mds"), samples, per_shard=4)
    assert sorted(os.listdir(root)) == ["index.json", "shard.00000.mds", "shard.00001.mds",
                                        "shard.00002.mds"]
    locators = scan(root)
    assert [loc.ordinal for loc in locators] == list(range(len(samples)))
    for loc, sample in zip(locators, samples):
        _same(read(root, loc), sample)
    assert check(root) == {"shards": 3, "samples": len(samples)}


_U64 = st.integers(0, 2 ** 64 - 1)


@st.composite
def payloads(draw):
    """Any image-record payload: any flag, label bits, ids and data (a header that re-packs,
    or not)."""
    flag = draw(st.integers(0, 5))
    field = draw(st.integers(0, 2 ** 32 - 1)) if flag == 0 or draw(st.booleans()) else 0
    labels = draw(st.lists(st.integers(0, 2 ** 32 - 1), min_size=flag, max_size=flag))
    return (struct.pack("<IIQQ", flag, field, draw(_U64), draw(_U64))
            + struct.pack("<%dI" % flag, *labels) + draw(st.binary(max_size=64)))


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(records=st.lists(st.tuples(_U64, payloads()), min_size=1, max_size=9))
def test_any_record_survives_as_a_payload(tmp_path_factory, records):
    samples = [sample_from_payload(key, payload) for key, payload in records]
    root = write_dataset(str(tmp_path_factory.mktemp("mds")), samples, per_shard=4)
    for loc, (key, payload) in zip(scan(root), records):
        s = read(root, loc)
        assert (s.key, payload_of(s)) == (key, payload)
    assert check(root)["samples"] == len(records)


def test_rec_to_mds_to_rec_gives_back_the_same_pair(tmp_path, images):
    src, back = str(tmp_path / "src.rec"), str(tmp_path / "back.rec")
    with RecordFileWriter(src) as w:
        for key, payload in _records(images):
            w.write_payload(payload, key=key)
    with RecordFile(src) as rf:
        samples = [sample_from_payload(key, rf.read(key)) for key in rf.keys]
    root = write_dataset(str(tmp_path / "mds"), samples, per_shard=3)
    with RecordFileWriter(back) as w:
        for loc in scan(root):
            s = read(root, loc)
            w.write_payload(payload_of(s), key=s.key)
    assert read_bytes(back) == read_bytes(src)
    assert read_bytes(back[:-4] + ".idx") == read_bytes(src[:-4] + ".idx")


def test_the_same_records_give_the_same_files(tmp_path, images):
    a = write_dataset(str(tmp_path / "a"), _samples(images), hashes=("sha1",))
    b = write_dataset(str(tmp_path / "b"), _samples(images), hashes=("sha1",))
    for name in os.listdir(a):
        assert read_bytes(os.path.join(a, name)) == read_bytes(os.path.join(b, name))


def test_shard_sizes_and_index_entries(tmp_path, images):
    path = str(tmp_path / "shard")
    w = ShardWriter(path, size_limit=1 << 20, hashes=("md5", "sha1"))
    encoded = [encode(s) for s in _samples(images)]
    assert w.count == 0 and w.size_with(encoded[0]) == w.nbytes + len(encoded[0]) + 4
    w.append(encoded[:2])
    w.append(encoded[2:])
    expected = w.nbytes
    summary = w.close()
    assert os.path.getsize(path) == expected == summary["raw_data"]["bytes"]
    assert summary["samples"] == len(encoded) and summary["zip_data"] is None
    assert sorted(summary["raw_data"]["hashes"]) == ["md5", "sha1"]
    entry = json.loads(index_json([("shard.00000.mds", summary)]))["shards"][0]
    assert entry["raw_data"]["basename"] == "shard.00000.mds"
    assert entry["column_names"] == sorted(columns()) and entry["format"] == "mds"
    with pytest.raises(OutputError, match="closed"):
        w.append(encoded[:1])
    with pytest.raises(OutputError, match="cannot create the MDS shard .*folder exists"):
        ShardWriter(str(tmp_path / "no" / "shard"))
    with pytest.raises(KeyError):
        with ShardWriter(path) as w:
            w.append(encoded)
            {}["the caller failed"]  # noqa: B018
    assert os.path.getsize(path) == 0   # not finished: no header, nothing a reader would take
    with ShardWriter(path, size_limit=1 << 20, hashes=("md5", "sha1")) as w:
        w.append(encoded)
    assert os.path.getsize(path) == expected


def test_options_are_refused_with_the_choices(tmp_path, images):
    path = str(tmp_path / "s")
    with pytest.raises(OptionError, match="bytes, jpeg, png"):
        ShardWriter(path, image_encoding="pil")
    with pytest.raises(OptionError, match="sorted"):
        ShardWriter(path, hashes=("sha1", "md5"))
    with pytest.raises(OptionError, match="2\\*\\*32"):
        ShardWriter(path, size_limit=2 ** 32)
    png_sample, label_only = _samples(images)[1], _samples(images)[3]
    with pytest.raises(ImageEncodeError, match="declared jpeg but this image is png"):
        encode(png_sample, "jpeg")
    with pytest.raises(ImageEncodeError, match="empty"):
        encode(label_only, "png")
    with pytest.raises(ImageEncodeError, match="flag 3 needs 3 labels, found 2"):
        encode(Sample(1, 3, np.zeros(2, np.float32), 1, 0, b"", None))
    with pytest.raises(ImageEncodeError, match="key 5: id -1 is out of range"):
        encode(Sample(5, 0, 1.0, -1, 0, b"", None))


# --- damage ---------------------------------------------------------------------------------

@pytest.fixture
def dataset(tmp_path, images):
    return write_dataset(str(tmp_path / "mds"), _samples(images), per_shard=5,
                         hashes=("sha1",))


def _edit_index(root, change):
    path = os.path.join(root, "index.json")
    with open(path) as f:
        obj = json.load(f)
    change(obj)
    with open(path, "w") as f:
        json.dump(obj, f)


def test_a_truncated_shard_names_the_file_and_sizes(dataset):
    shard = os.path.join(dataset, "shard.00001.mds")
    size = os.path.getsize(shard)
    os.truncate(shard, size - 10)
    with pytest.raises(RecordFormatError, match="has %d bytes, index.json says %d" % (
            size - 10, size)) as e:
        scan(dataset)
    assert e.value.path == shard


def test_a_missing_or_broken_index(tmp_path, dataset):
    with pytest.raises(RecordFormatError, match="no index.json"):
        scan(str(tmp_path))
    _edit_index(dataset, lambda obj: obj.update(version=1))
    with pytest.raises(RecordFormatError, match="index.json version 2.*found version 1"):
        scan(dataset)
    with open(os.path.join(dataset, "index.json"), "w") as f:
        f.write("{not json")
    with pytest.raises(RecordFormatError, match="index.json is not JSON"):
        scan(os.path.join(dataset, "index.json"))


def test_a_column_of_an_unknown_encoding(dataset):
    _edit_index(dataset, lambda obj: obj["shards"][1]["column_encodings"].__setitem__(1, "u128"))
    with pytest.raises(RecordFormatError, match="shard 1: column 'id' has encoding 'u128', "
                                                "which MDS does not define"):
        scan(dataset)


def test_a_shard_that_is_missing(dataset):
    os.remove(os.path.join(dataset, "shard.00000.mds"))
    with pytest.raises(RecordFormatError, match="shard.00000.mds: the shard index.json lists "
                                                "is missing"):
        scan(dataset)


def test_offsets_out_of_order(dataset):
    shard = os.path.join(dataset, "shard.00000.mds")
    with open(shard, "r+b") as f:
        f.seek(4 * 3)
        f.write(struct.pack("<I", 1))
    with pytest.raises(RecordFormatError, match="sample 2's offset 1 is out of order") as e:
        scan(dataset)
    assert e.value.offset == 12


def test_damage_inside_a_sample_and_its_digest(dataset):
    locators = scan(dataset)
    loc = locators[6]
    shard = os.path.join(dataset, loc.shard.basename)
    with open(shard, "r+b") as f:   # the image's length, first of the sample
        f.seek(loc.begin)
        f.write(struct.pack("<I", 1 << 30))
    with pytest.raises(RecordFormatError, match="sample 6: its columns add up to") as e:
        read(dataset, loc)
    assert (e.value.path, e.value.offset) == (shard, loc.begin)
    with pytest.raises(RecordFormatError, match="the sha1 digest is"):
        check(dataset)


def test_a_header_that_disagrees_with_its_columns(tmp_path, images):
    s = _samples(images)[5]
    assert s.head is not None
    root = write_dataset(str(tmp_path / "mds"), [s._replace(id2=4)])
    with pytest.raises(RecordFormatError, match="recordio_header .* disagrees"):
        check(root)


def test_a_damaged_shard_configuration(dataset):
    shard = os.path.join(dataset, "shard.00000.mds")
    data = bytearray(read_bytes(shard))
    at = data.index(b'"column_names"')
    data[at + 1:at + 7] = b"COLUMN"
    with open(shard, "wb") as f:
        f.write(data)
    _edit_index(dataset, lambda obj: obj["shards"][0]["raw_data"]["hashes"].clear())
    with pytest.raises(RecordFormatError, match="should repeat index.json's columns"):
        check(dataset)


# --- MosaicML streaming's own reader and writer ----------------------------------------------

@pytest.fixture(scope="module")
def streaming_dataset():
    return streaming_module("streaming.base.dataset").StreamingDataset


@pytest.fixture(scope="module")
def mds_writer():
    return streaming_module("streaming.base.format.mds.writer").MDSWriter


def _read_with_streaming(cls, root):
    """Every sample as StreamingDataset gives it, by index; iteration must give the same."""
    ds = cls(local=root, remote=None, shuffle=False, batch_size=1)
    by_index = [ds[i] for i in range(len(ds))]
    iterated = list(ds)
    assert len(iterated) == len(by_index)
    for a, b in zip(iterated, by_index):
        assert {k: bytes(v) if isinstance(v, bytes) else np.asarray(v).tobytes()
                for k, v in a.items() if k != "image" or isinstance(v, bytes)} == {
            k: bytes(v) if isinstance(v, bytes) else np.asarray(v).tobytes()
            for k, v in b.items() if k != "image" or isinstance(v, bytes)}
    return by_index


def _as_streaming_sees_it(sample, got):
    """One StreamingDataset sample against the Sample it was written from."""
    assert set(got) == set(columns())
    assert (int(got["key"]), int(got["flag"]), int(got["id"]), int(got["id2"])) == (
        sample.key, sample.flag, sample.id, sample.id2)
    assert got["label"].dtype == np.float32 and got["label"].tobytes() == np.asarray(
        sample.label, "<f4").reshape(-1).tobytes()
    assert got["recordio_header"] == (sample.head or b"")


@pytest.mark.formats
def test_streaming_reads_every_sample_recpack_wrote(tmp_path, images, streaming_dataset):
    samples = _samples(images)
    root = write_dataset(str(tmp_path / "mds"), samples, per_shard=4, hashes=("sha1",))
    got = _read_with_streaming(streaming_dataset, root)
    assert len(got) == len(samples)
    for sample, one in zip(samples, got):
        _as_streaming_sees_it(sample, one)
        assert one["image"] == sample.image


@pytest.mark.formats
@pytest.mark.parametrize("kind", ["jpeg", "png"])
def test_streaming_opens_jpeg_and_png_columns_as_the_stored_images(tmp_path, images, kind,
                                                                   streaming_dataset):
    samples = [Sample(k, 0, float(k), k, 0, data, None) for k, data in enumerate(images[kind])]
    root = write_dataset(str(tmp_path / kind), samples, per_shard=2, image_encoding=kind)
    for sample, got in zip(samples, _read_with_streaming(streaming_dataset, root)):
        _as_streaming_sees_it(sample, got)
        img = got["image"]
        assert img.format == kind.upper() and img.fp.getvalue() == sample.image
        rgb = cv2.cvtColor(cv2.imdecode(np.frombuffer(sample.image, np.uint8),
                                        cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        assert img.size == (rgb.shape[1], rgb.shape[0])
        if kind == "png":  # lossless: the pixels too
            assert np.array_equal(np.asarray(img.convert("RGB")), rgb)
    for loc, sample in zip(scan(root), samples):
        _same(read(root, loc), sample)


@pytest.mark.formats
def test_recpack_writes_what_mdswriter_writes(tmp_path, images, mds_writer):
    samples = _samples(images) * 3
    theirs, ours = str(tmp_path / "theirs"), str(tmp_path / "ours")
    limit = 40_000
    with mds_writer(out=theirs, columns=columns(), size_limit=limit, hashes=["md5", "sha1"]) as w:
        for s in samples:
            w.write({"flag": s.flag, "id": s.id, "id2": s.id2, "image": s.image, "key": s.key,
                     "label": np.asarray(s.label, np.float32).reshape(-1),
                     "recordio_header": s.head or b""})
    os.makedirs(ours)
    shards, writer = [], None
    for s in samples:   # a new shard where the next sample would pass the limit, as a runner does
        e = encode(s)
        if writer is None or (writer.count and writer.size_with(e) > limit):
            if writer is not None:
                shards.append((shard_basename(len(shards)), writer.close()))
            writer = ShardWriter(os.path.join(ours, shard_basename(len(shards))),
                                 size_limit=limit, hashes=("md5", "sha1"))
        writer.append([e])
    shards.append((shard_basename(len(shards)), writer.close()))
    with open(os.path.join(ours, "index.json"), "wb") as f:
        f.write(index_json(shards))
    assert len(shards) > 2
    assert sorted(os.listdir(ours)) == sorted(os.listdir(theirs))
    for name in os.listdir(theirs):
        assert read_bytes(os.path.join(ours, name)) == read_bytes(os.path.join(theirs, name)), name


def _jpeg_files(tmp_path, images):
    paths = []
    for i, data in enumerate(images["jpeg"]):
        paths.append(str(tmp_path / ("%d.jpg" % i)))
        with open(paths[-1], "wb") as f:
            f.write(data)
    return paths


@pytest.mark.formats
def test_a_dataset_in_streamings_imagenet_layout(tmp_path, images, mds_writer):
    """``{'i': int, 'x': jpeg, 'y': int}`` (streaming's ImageNet converter), images given as
    PIL images opened from files: keys in order from 0, labels from ``y``, the JPEG files'
    bytes."""
    from PIL import Image
    paths = _jpeg_files(tmp_path, images) * 3
    root = str(tmp_path / "imagenet")
    with mds_writer(out=root, columns={"i": "int", "x": "jpeg", "y": "int"},
                    size_limit=30_000, hashes=["sha1", "xxh3_64"]) as w:
        for n, path in enumerate(paths):
            w.write({"i": 100 - n, "x": Image.open(path), "y": n % 4})
    locators = scan(root)
    assert len({loc.shard.basename for loc in locators}) > 1
    for n, (loc, path) in enumerate(zip(locators, paths)):
        assert read(root, loc) == Sample(n, 0, float(n % 4), n, 0, read_bytes(path), None)
    assert check(root)["samples"] == len(paths)


@pytest.mark.formats
def test_a_dataset_with_keys_vector_labels_and_other_columns(tmp_path, images, mds_writer):
    root = str(tmp_path / "other")
    cols = {"caption": "str", "image": "png", "key": "uint64", "label": "ndarray:float32",
            "id2": "int"}
    labels = [np.array([1.5, -2], np.float32), np.array([7], np.float32)]
    with mds_writer(out=root, columns=cols) as w:
        for n, data in enumerate(images["png"]):
            w.write({"caption": "photo %d" % n, "image": data, "key": 2 ** 64 - 1 - n,
                     "label": labels[n], "id2": n + 3})
    got = [read(root, loc) for loc in scan(root)]
    for n, (s, data) in enumerate(zip(got, images["png"])):
        _same(s, Sample(2 ** 64 - 1 - n, len(labels[n]), labels[n], 2 ** 64 - 1 - n, n + 3,
                        data, None))


@pytest.mark.formats
def test_foreign_columns_recpack_cannot_read(tmp_path, images, mds_writer):
    from PIL import Image
    pil = str(tmp_path / "pil")
    with mds_writer(out=pil, columns={"image": "pil", "label": "int"}) as w:
        w.write({"image": Image.open(_jpeg_files(tmp_path, images)[0]), "label": 1})
    with pytest.raises(RecordFormatError, match="column 'image' \\(the image\\) has encoding "
                                                "'pil' \\(raw pixels.*bytes, jpeg or png"):
        scan(pil)
    unlabelled = str(tmp_path / "unlabelled")
    with mds_writer(out=unlabelled, columns={"image": "bytes", "caption": "str"}) as w:
        w.write({"image": images["jpeg"][0], "caption": "a"})
    with pytest.raises(RecordFormatError, match="no label column: .*'label' \\(or 'y'\\), "
                                                "found columns caption, image; pass a default"):
        scan(unlabelled)
    assert read(unlabelled, scan(unlabelled, default_label=[1, 2])[0]).label.tolist() == [1, 2]
    big = str(tmp_path / "big")
    with mds_writer(out=big, columns={"image": "bytes", "label": "int"}) as w:
        w.write({"image": b"", "label": 2 ** 24 + 1})
    with pytest.raises(RecordFormatError, match="sample 0: label \\[16777217\\] is not a "
                                                "float32"):
        check(big)


@pytest.mark.formats
def test_compressed_shards_are_read_once_streaming_decompressed_them(tmp_path, images,
                                                                     mds_writer,
                                                                     streaming_dataset):
    root = str(tmp_path / "zstd")
    with mds_writer(out=root, columns={"image": "bytes", "label": "float32"},
                    compression="zstd") as w:
        for n, data in enumerate(images["jpeg"]):
            w.write({"image": data, "label": n / 2})
    assert sorted(os.listdir(root)) == ["index.json", "shard.00000.mds.zstd"]
    with pytest.raises(RecordFormatError, match="stored compressed only "
                                                "\\(shard.00000.mds.zstd\\)"):
        scan(root)
    assert len(_read_with_streaming(streaming_dataset, root)) == len(images["jpeg"])
    assert [read(root, loc).image for loc in scan(root)] == images["jpeg"]


@pytest.mark.formats
@pytest.mark.parametrize("encoding, value, label", [
    ("int", 3, 3.0), ("uint8", 200, 200.0), ("int16", -7, -7.0), ("float16", 0.5, 0.5),
    ("float64", 0.1, float(np.float32(0.1))), ("str_int", 12, 12.0),
    ("str_float", 2.25, 2.25), ("json", 4, 4.0), ("json", [1, 2.5], [1.0, 2.5]),
    ("ndarray", np.array([5, 6, 7], np.int32), [5.0, 6.0, 7.0]),
    ("ndarray:uint16:2", np.array([8, 9], np.uint16), [8.0, 9.0]),
])
def test_labels_of_every_number_encoding(tmp_path, mds_writer, encoding, value, label):
    """A number is a scalar label (flag 0), an array or list a vector (flag = its length);
    float64 values become the nearest float32 (RecordIO's label type)."""
    root = str(tmp_path / "labels")
    with mds_writer(out=root, columns={"image": "bytes", "label": encoding}) as w:
        w.write({"image": b"\xff\xd8\xff", "label": value})
    (s,) = [read(root, loc) for loc in scan(root)]
    assert s.flag == (0 if isinstance(label, float) else len(label))
    assert (s.label if s.flag == 0 else s.label.tolist()) == label


@pytest.mark.formats
@pytest.mark.parametrize("encoding, value, found", [
    ("str_int", 2 ** 70, "label \\[1180591620717411303424\\] is not a float32"),
    ("json", [], "a json label is a number or a non-empty list"),
    ("json", "cat", "a json label is a number or a non-empty list of numbers, found 'cat'"),
    ("ndarray", np.zeros((2, 2), np.float32), "the label has shape \\(2, 2\\)"),
])
def test_labels_recpack_cannot_store(tmp_path, mds_writer, encoding, value, found):
    root = str(tmp_path / "labels")
    with mds_writer(out=root, columns={"image": "bytes", "label": encoding}) as w:
        w.write({"image": b"", "label": value})
    with pytest.raises(RecordFormatError, match="sample 0: " + found):
        check(root)


def test_an_index_that_promises_more_samples_than_the_shard_holds(dataset):
    _edit_index(dataset, lambda obj: obj["shards"][0].update(samples=10 ** 12))
    with pytest.raises(RecordFormatError, match="sample count 1000000000000 .* found only"):
        scan(dataset)
    _edit_index(dataset, lambda obj: obj["shards"][0].update(samples=-1))
    with pytest.raises(RecordFormatError, match="shard 0's entry is not an MDS shard "
                                                "\\(samples -1"):
        scan(dataset)
