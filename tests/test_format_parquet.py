"""Parquet in Hugging Face ``datasets``' image layout: ``.rec -> Parquet -> .rec`` gives back the
same ``.rec`` and ``.idx`` byte for byte; ``datasets.load_dataset`` and pyarrow read every
record (image bytes, labels, keys and header fields in their columns); files that ``datasets``
wrote, and a ``datasets.Dataset``, are read by the rules; damaged files and unusable columns
give errors that name the file, the row or row group and the fix."""
import errno
import gc
import os
import pickle
import struct
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import cv2  # noqa: E402
import datasets  # noqa: E402
import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import pytest  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from helpers import read as read_bytes  # noqa: E402
from mxnet_recpack import RecordFileWriter  # noqa: E402
from mxnet_recpack.errors import (BadImageError, DuplicateKeyError, ImageEncodeError,  # noqa: E402
                                  RecordFormatError)
from mxnet_recpack.format.header import label_only_record, pack_record  # noqa: E402
from mxnet_recpack.format.reader import RecordFile  # noqa: E402
from mxnet_recpack.formats import parquet as P  # noqa: E402
from mxnet_recpack.formats.sample import payload_of, sample_from_payload  # noqa: E402

pytestmark = pytest.mark.formats
datasets.disable_progress_bars()
_HEAD = struct.Struct("<IfQQ")


def jpeg(rgb, side=160, quality=90):
    h, w = rgb.shape[:2]
    small = cv2.resize(rgb, (side, max(1, h * side // w)), interpolation=cv2.INTER_AREA)
    return cv2.imencode(".jpg", small[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])[1]\
        .tobytes()


def png(rgb, side=96):
    h, w = rgb.shape[:2]
    small = cv2.resize(rgb, (side, max(1, h * side // w)), interpolation=cv2.INTER_AREA)
    return cv2.imencode(".png", small[:, :, ::-1])[1].tobytes()


def raw_record(flag, label_field, ident, id2, vector=(), image=b""):
    """A payload with any header (what MXNet's pack would not write, too)."""
    return (_HEAD.pack(flag, label_field, ident, id2)
            + np.asarray(vector, "<f4").tobytes() + image)


def record_sets(photos):
    """``{name: [(key, payload), ...]}``: the kinds of .rec files people have."""
    images = [jpeg(p) if i % 3 else png(p) for i, (_, p) in enumerate(photos)]
    keys = [int(k) for k in np.random.RandomState(0).permutation(1000)[:len(images)] + 5]
    classes = [(k, pack_record(i % 4, k, im)) for i, (k, im) in enumerate(zip(keys, images))]
    nan = struct.unpack("<f", b"\x01\x00\xc0\x7f")[0]  # a quiet NaN with a payload
    fractions = [(k, pack_record(i / 8 - 0.5, k, im, id2=i))
                 for i, (k, im) in enumerate(zip(keys, images))]
    fractions += [(2**64 - 1, raw_record(0, -0.0, 2**64 - 1, 2**64 - 1, image=images[0])),
                  (3, raw_record(0, nan, 77, 1, image=images[1])),  # NaN bits, id != key
                  (6, raw_record(0, 0.0, 6, 0, image=images[2])[:4] + b"\x01\x00\x80\x7f"
                   + raw_record(0, 0.0, 6, 0, image=images[2])[8:]),  # a signalling NaN
                  (4, raw_record(0, 2.0**40, 4, 0, image=b"not an image"))]
    vectors = [(k, pack_record([i, 0.25, 0.5, 0.75, 1.0][:2 + i % 4], k, im))
               for i, (k, im) in enumerate(zip(keys, images))]
    vectors += [(1, label_only_record([3, 9], 1)),
                (2, raw_record(2, 7.5, 2, 5, [1, 2], images[2])),  # label field beside a vector
                (9, raw_record(1, 0.0, 9, 0, [nan], np.save.__doc__.encode()[:40]))]
    n = len(images)
    faces = [(i + 1, pack_record(i % 3, i + 1, im)) for i, im in enumerate(images)]
    starts = [1 + sum(1 for j in range(n) if j % 3 < c) for c in range(3)]
    ends = [1 + sum(1 for j in range(n) if j % 3 <= c) for c in range(3)]
    faces += [(n + 1 + c, label_only_record([s, e], n + 1 + c)) for c, (s, e) in
              enumerate(zip(starts, ends))]
    faces += [(0, raw_record(2, 0.0, 0, 1, [n + 1, n + 4]))]
    return {"classes": classes, "fractions": fractions, "vectors": vectors, "faces": faces}


@pytest.fixture(scope="module")
def sets(photos):
    return record_sets(photos)


def write_rec(path, records):
    with RecordFileWriter(str(path)) as w:
        for key, payload in records:
            w.write_payload(payload, key)
    return str(path)


def rec_samples(path):
    with RecordFile(path) as rf:
        return [sample_from_payload(k, rf.read(k)) for k in rf.keys]


def write_parquet(folder, samples, *, label_kind=None, shard_bytes=None, batch=5, **options):
    """Shards of at most ``shard_bytes`` (closed when a batch passes it), as a runner does."""
    layout = P.LayoutScan(label_kind).add_all(samples).layout()
    os.makedirs(folder, exist_ok=True)
    paths, writer = [], None
    for start in range(0, len(samples), batch):
        if writer is None:
            paths.append(os.path.join(folder, "train-%05d.parquet" % len(paths)))
            writer = P.ShardWriter(paths[-1], layout, **options)
        writer.append([P.encode(s) for s in samples[start:start + batch]])
        if shard_bytes is not None and writer.nbytes >= shard_bytes:
            writer.close()
            writer = None
    if writer is not None:
        writer.close()
    return layout, paths


def read_all(paths):
    return [P.read(p, loc) for p in paths for loc in P.scan(p)]


def same(a, b):
    assert (a.key, payload_of(a)) == (b.key, payload_of(b))


KINDS = {"classes": "int", "fractions": "float", "vectors": "vector", "faces": "vector"}


@pytest.mark.parametrize("name", sorted(KINDS))
def test_rec_to_parquet_to_rec_gives_the_same_files(tmp_path, sets, name):
    rec = write_rec(tmp_path / "in.rec", sets[name])
    samples = rec_samples(rec)
    layout, paths = write_parquet(tmp_path / "pq", samples, shard_bytes=40000,
                                  label_kind="vector" if name == "faces" else None,
                                  row_group_rows=4)
    assert layout.label_kind == KINDS[name] and len(paths) >= 2
    assert layout.recordio_header == any(s.head is not None for s in samples)
    assert layout.recordio_header or name not in ("vectors",)
    with RecordFileWriter(str(tmp_path / "out.rec")) as w:
        for s in read_all(paths):
            w.write_payload(payload_of(s), s.key)
    assert read_bytes(tmp_path / "out.rec") == read_bytes(rec)
    assert read_bytes(tmp_path / "out.idx") == read_bytes(tmp_path / "in.idx")


@pytest.mark.parametrize("name", sorted(KINDS))
def test_datasets_load_dataset_reads_every_record(tmp_path, sets, name):
    samples = [sample_from_payload(k, p) for k, p in sets[name]]
    layout, paths = write_parquet(tmp_path / "pq", samples, shard_bytes=40000,
                                  label_kind="vector" if name == "faces" else None)
    ds = datasets.load_dataset("parquet", data_files=paths, split="train",
                               cache_dir=str(tmp_path / "hf"))
    assert isinstance(ds.features["image"], datasets.Image)
    want = {"int": datasets.Value("int64"), "float": datasets.Value("float32"),
            "vector": datasets.Sequence(datasets.Value("float32"))}[layout.label_kind]
    assert ds.features["label"] == want
    assert ds.features["key"] == datasets.Value("uint64")
    assert len(ds) == len(samples)
    raw = ds.cast_column("image", datasets.Image(decode=False))
    for i, s in enumerate(samples):
        row = raw[i]  # Image() decodes when a row is read: only images PIL opens are decoded
        assert (row["key"], row["flag"], row["id"], row["id2"]) == (s.key, s.flag, s.id, s.id2)
        assert row["image"] == ({"bytes": s.image, "path": None} if s.image else None)
        pixels = cv2.imdecode(np.frombuffer(s.image, np.uint8), 1) if s.image else None
        if pixels is not None:
            image = ds[i]["image"]
            assert image.size == (pixels.shape[1], pixels.shape[0])
            if s.image[:4] == b"\x89PNG":
                assert np.array_equal(np.asarray(image.convert("RGB")), pixels[:, :, ::-1])
        elif not s.image:
            assert ds[i]["image"] is None
        got = np.asarray(row["label"], np.float32).reshape(-1)
        assert got.tobytes() == np.asarray(s.label, "<f4").reshape(-1).tobytes() or (
            np.isnan(got).all() and np.isnan(np.asarray(s.label)).all())
    # what datasets users do: select rows and write them again with datasets' own writer
    picked = ds.select(range(len(ds) - 1, -1, -2))
    picked.to_parquet(str(tmp_path / "picked.parquet"))
    for s, b in zip(samples[::-1][::2], P.ParquetReader(tmp_path / "picked.parquet")):
        same(s, b)
    for s, b in zip(samples[::-1][::2], P.DatasetReader(picked)):
        same(s, b)


def test_pyarrow_reads_the_columns_and_row_groups(tmp_path, sets):
    samples = [sample_from_payload(k, p) for k, p in sets["vectors"]]
    layout, (path,) = write_parquet(tmp_path, samples, batch=3, row_group_rows=4)
    f = pq.ParquetFile(path)
    assert [f.metadata.row_group(g).num_rows for g in range(f.num_row_groups)] == \
        [4] * (len(samples) // 4) + ([len(samples) % 4] if len(samples) % 4 else [])
    table = f.read()
    assert table.schema.field("image").type == pa.struct([("bytes", pa.binary()),
                                                          ("path", pa.string())])
    assert table.schema.field("key").type == pa.uint64()
    rows = table.to_pylist()
    for s, row in zip(samples, rows):
        assert row["key"] == s.key and row["id"] == s.id and row["id2"] == s.id2
        assert row["image"] == (None if not s.image else {"bytes": s.image, "path": None})
        assert np.asarray(row["label"], "<f4").tobytes() == np.asarray(s.label, "<f4").tobytes()
        assert row["recordio_header"] == s.head
    # the footer names the writer's version and holds the two schemas: no time, no machine
    assert set(f.metadata.metadata) == {b"ARROW:schema", b"huggingface"}
    assert f.metadata.created_by == "parquet-cpp-arrow version %s" % pa.__version__


def test_features_are_what_datasets_writes():
    """The ``huggingface`` key says what ``datasets.Features`` would for the same columns."""
    for layout, label in [(P.Layout("int"), datasets.Value("int64")),
                          (P.Layout("float"), datasets.Value("float32")),
                          (P.Layout("int", class_names=["cat", "dog"]),
                           datasets.ClassLabel(names=["cat", "dog"]))]:
        features = datasets.Features({
            "image": datasets.Image(), "label": label, "key": datasets.Value("uint64"),
            "flag": datasets.Value("uint32"), "id": datasets.Value("uint64"),
            "id2": datasets.Value("uint64")})
        ours = P.arrow_schema(layout)
        assert ours.metadata[b"huggingface"] == features.arrow_schema.metadata[b"huggingface"]
        assert datasets.Features.from_arrow_schema(ours) == features
    vector = datasets.Features.from_arrow_schema(P.arrow_schema(P.Layout("vector", True)))
    assert vector["label"] == datasets.Sequence(datasets.Value("float32"))
    assert vector["recordio_header"] == datasets.Value("binary")


def test_class_names_give_a_class_label(tmp_path, sets):
    samples = [sample_from_payload(k, p) for k, p in sets["classes"]]
    layout = P.LayoutScan(class_names=["a", "b", "c", "d"]).add_all(samples).layout()
    with P.ShardWriter(tmp_path / "x.parquet", layout) as w:
        w.append([P.encode(s) for s in samples])
    ds = datasets.load_dataset("parquet", data_files=str(tmp_path / "x.parquet"),
                               split="train", cache_dir=str(tmp_path / "hf"))
    assert ds.features["label"] == datasets.ClassLabel(names=["a", "b", "c", "d"])
    assert ds["label"] == [int(s.label) for s in samples]
    with pytest.raises(ImageEncodeError, match="3 class names cover labels 0..2, but the "
                                               "labels run from 0 to 3"):
        P.LayoutScan(class_names=["a", "b", "c"]).add_all(samples).layout()


def test_bytes_depend_only_on_the_records(tmp_path, sets):
    samples = [sample_from_payload(k, p) for k, p in sets["fractions"]]
    files = []
    for batch in (1, 4, len(samples)):
        _, (path,) = write_parquet(tmp_path / str(batch), samples, batch=batch,
                                   row_group_rows=3)
        files.append(read_bytes(path))
    assert files[0] == files[1] == files[2]


def test_size_limits_count_the_bytes(tmp_path, sets):
    samples = [sample_from_payload(k, p) for k, p in sets["classes"]]
    layout = P.LayoutScan().add_all(samples).layout()
    w = P.ShardWriter(tmp_path / "x.parquet", layout, row_group_rows=1000,
                      row_group_bytes=50000)
    sizes = []
    for s in samples:
        w.append([P.encode(s)])
        sizes.append(w.nbytes)
    assert sizes == sorted(sizes) and sizes[-1] >= sum(len(s.image) for s in samples)
    summary = w.close()
    assert summary["count"] == len(samples) == w.count
    assert summary["nbytes"] == os.path.getsize(tmp_path / "x.parquet")
    groups = pq.ParquetFile(tmp_path / "x.parquet").metadata
    assert summary["row_groups"] == groups.num_row_groups > 1
    assert all(groups.row_group(g).total_byte_size < 50000 + 40000
               for g in range(groups.num_row_groups))


def test_mixed_label_kinds_are_refused_before_anything_is_written(tmp_path, sets):
    samples = [sample_from_payload(k, p) for k, p in sets["faces"]]
    with pytest.raises(ImageEncodeError, match=r"labels of mixed kinds: record key 1 has a "
                                               r"scalar label .* record key \d+ a vector"
                                               r".*label_kind 'vector'"):
        write_parquet(tmp_path / "pq", samples)
    assert not os.path.exists(tmp_path / "pq")
    with pytest.raises(ImageEncodeError, match="label_kind 'int' needs integral labels, but "
                                               "record key 2 "):
        P.LayoutScan("int").add_all([sample_from_payload(2, pack_record(0.5, 2, b"x"))])\
            .layout()


def test_a_writer_refuses_records_its_layout_cannot_hold(tmp_path):
    vector = sample_from_payload(4, pack_record([1, 2], 4, b"x"))
    with pytest.raises(ImageEncodeError, match=r"x.parquet: record key 4 has a vector label, "
                                               r"but the layout's label column is 'int'"):
        with P.ShardWriter(tmp_path / "x.parquet", P.Layout("int")) as w:
            w.append([P.encode(vector)])
            w.close()
    minus_zero = sample_from_payload(5, pack_record(-0.0, 5, b"x"))
    assert P.LayoutScan().add_all([minus_zero]).layout().label_kind == "float"
    odd = sample_from_payload(6, raw_record(1, 3.0, 6, 0, [1]))
    good = sample_from_payload(7, pack_record([1, 2], 7, b"y"))
    with pytest.raises(ImageEncodeError, match="record key 6 keeps its original header bytes, "
                                               "but the layout has no recordio_header"):
        with P.ShardWriter(tmp_path / "y.parquet", P.Layout("vector"), row_group_rows=1) as w:
            w.append([P.encode(good), P.encode(odd)])
    unraisable = []
    hook, sys.unraisablehook = sys.unraisablehook, unraisable.append
    try:
        del w
        gc.collect()
    finally:
        sys.unraisablehook = hook
    assert unraisable == []  # nothing is left to write at exit
    for name in ("x.parquet", "y.parquet"):  # never a readable file of some of the records
        assert os.path.getsize(tmp_path / name) == 0 and not P.is_parquet(tmp_path / name)


def test_a_full_disk_is_reported_with_its_errno_and_leaves_nothing_to_write():
    """ENOSPC (``/dev/full``, a real device that is always full) reaches the caller as the
    system's OSError, for the runner to report with its step; nothing fails later at exit."""
    samples = [sample_from_payload(i, pack_record(1, i, bytes(100000))) for i in range(30)]
    unraisable = []
    hook, sys.unraisablehook = sys.unraisablehook, unraisable.append
    try:
        with pytest.raises(OSError) as info:
            with P.ShardWriter("/dev/full", P.Layout(), row_group_rows=10) as w:
                w.append([P.encode(s) for s in samples])
        gc.collect()
    finally:
        sys.unraisablehook = hook
    assert info.value.errno == errno.ENOSPC
    assert unraisable == []


U64 = st.integers(0, 2**64 - 1)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(U64, st.integers(0, 4), st.binary(min_size=4, max_size=4), U64, U64,
                          st.binary(max_size=24), st.binary(max_size=40)),
                min_size=1, max_size=12, unique_by=lambda r: r[0]))
def test_every_record_comes_back_exactly(tmp_path_factory, records):
    """Any header (label bits, NaNs, a label field beside a vector), any key, id, id2 and
    bytes: ``read(encode(sample))`` gives the same record."""
    payloads = []
    for key, flag, field, ident, id2, vector, image in records:
        vector = (vector * 4)[:4 * flag].ljust(4 * flag, b"\0")
        payloads.append((key, struct.pack("<I", flag) + field + struct.pack("<QQ", ident, id2)
                         + vector + image))
    samples = [sample_from_payload(k, p) for k, p in payloads]
    folder = tmp_path_factory.mktemp("prop")
    _, paths = write_parquet(folder, samples, label_kind="vector", batch=3, row_group_rows=2)
    back = read_all(paths)
    assert [(s.key, payload_of(s)) for s in back] == payloads


def test_reads_from_threads_and_processes(tmp_path, sets):
    samples = [sample_from_payload(k, p) for k, p in sets["vectors"]]
    _, (path,) = write_parquet(tmp_path, samples, row_group_rows=3)
    reader = P.ParquetReader(path)
    locators = reader.locators()
    order = list(reversed(locators)) * 3
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(reader.read, order))
    for s, loc in zip(got, order):
        same(s, samples[locators.index(loc)])
    with ProcessPoolExecutor(2) as pool:
        payloads = list(pool.map(_payload_at, [pickle.dumps(reader)] * len(locators),
                                 locators))
    assert payloads == [payload_of(s) for s in samples]


def _payload_at(reader, locator):
    return payload_of(pickle.loads(reader).read(locator))


# -- files that recpack did not write -----------------------------------------------------

def test_files_datasets_wrote_are_read_by_the_rules(tmp_path, photos):
    images = [jpeg(p) for _, p in photos[:5]]
    features = datasets.Features({"img": datasets.Image(),
                                  "fine_label": datasets.ClassLabel(names=list("abcde")),
                                  "coarse_label": datasets.ClassLabel(names=["x", "y"])})
    ds = datasets.Dataset.from_dict({"img": [{"bytes": b, "path": None} for b in images],
                                     "fine_label": [4, 3, 2, 1, 0],
                                     "coarse_label": [1, 1, 0, 0, 1]}, features=features)
    os.makedirs(tmp_path / "data")
    path = str(tmp_path / "data" / "train-00000-of-00001.parquet")
    ds.to_parquet(path)
    assert P.list_files(str(tmp_path)) == [path] and P.is_parquet(path)
    with pytest.raises(RecordFormatError, match=r"no label column \(several ClassLabel "
                                                r"columns: fine_label, coarse_label\): the "
                                                r"columns are img \(struct<bytes: binary, "
                                                r"path: string>\), fine_label \(int64\)"):
        P.scan(path)
    samples = list(P.ParquetReader(path, label_column="coarse_label"))
    assert [s.key for s in samples] == [0, 1, 2, 3, 4] == [s.id for s in samples]
    assert [s.image for s in samples] == images
    assert [(s.flag, s.label, s.id2, s.head) for s in samples] == \
        [(0, float(c), 0, None) for c in [1, 1, 0, 0, 1]]
    shifted = P.ParquetReader(path, label_column="fine_label", first_key=10)
    assert [s.key for s in shifted] == [10, 11, 12, 13, 14]
    assert P.check(path, label_column="fine_label")["encodings"] == {"jpeg": 5}


def test_a_dataset_is_read_in_its_own_order(tmp_path, photos):
    images = [png(p, side=40) for _, p in photos[:6]]
    ds = datasets.Dataset.from_dict(
        {"image": [{"bytes": b, "path": None} for b in images],
         "label": [[0.5, i] for i in range(6)], "key": [100 + i for i in range(6)]},
        features=datasets.Features({"image": datasets.Image(),
                                    "label": datasets.Sequence(datasets.Value("float64")),
                                    "key": datasets.Value("int64")}))
    picked = ds.select([5, 0, 3])
    reader = P.DatasetReader(picked)
    assert reader.locators() == [0, 1, 2]
    got = [reader.read(i) for i in (2, 0, 1)]
    assert [s.key for s in got] == [103, 105, 100]
    assert [s.image for s in got] == [images[3], images[5], images[0]]
    assert all(s.flag == 2 and s.label.dtype == np.float32 for s in got)
    assert [float(s.label[1]) for s in got] == [3.0, 5.0, 0.0]
    assert pickle.loads(pickle.dumps(reader)).read(0).key == 105


def test_images_given_by_path_are_read_beside_the_file(tmp_path, photos):
    os.makedirs(tmp_path / "imgs")
    images = [jpeg(p) for _, p in photos[:3]]
    for i, b in enumerate(images):
        (tmp_path / "imgs" / ("%d.jpg" % i)).write_bytes(b)
    image = pa.array([{"bytes": None, "path": "imgs/%d.jpg" % i} for i in range(3)] + [None],
                     pa.struct([("bytes", pa.binary()), ("path", pa.string())]))
    table = pa.table({"picture": image, "label": pa.array([1.5, 2.0, None, 4.0])})
    pq.write_table(table, tmp_path / "t.parquet")
    with pytest.raises(RecordFormatError, match=r"row 2: the label \(column 'label'\) is "
                                                r"null: .*label= \(--label\)"):
        list(P.ParquetReader(tmp_path / "t.parquet"))
    got = list(P.ParquetReader(tmp_path / "t.parquet", default_label=7))
    assert [s.image for s in got] == images + [b""]
    assert [s.label for s in got] == [1.5, 2.0, 7.0, 4.0]
    os.remove(tmp_path / "imgs" / "1.jpg")
    with pytest.raises(BadImageError, match=r"t.parquet, row 1: the image path 'imgs/1.jpg' "
                                            r".* cannot be read: No such file"):
        list(P.ParquetReader(tmp_path / "t.parquet", default_label=7))


@pytest.mark.parametrize("columns, rules, message", [
    ({"pixels": pa.array([[1, 2]]), "label": pa.array([1])}, {},
     r"no image column: the columns are pixels \(list<\w+: int64>\), label \(int64\)\. Name "
     r"the column that holds the images with image_column= \(--image-column\)"),
    ({"image": pa.array([b"x"]), "label": pa.array(["cat"])}, {},
     r"label column 'label' has type string: labels are numbers"),
    ({"image": pa.array([b"x"]), "name": pa.array(["cat"])}, {},
     r"no label column: the columns are image \(binary\), name \(string\)\. Name it with "
     r"label_column= \(--label-column\)"),
    ({"image": pa.array([b"x"]), "label": pa.array([1])}, {"image_column": "photo"},
     r"no column 'photo' \(image_column\): the columns are image \(binary\), label"),
    ({"image": pa.array([b"x"]), "label": pa.array([1]), "key": pa.array(["a"])}, {},
     r"column 'key' has type string, but keys are integers .* key_column=None"),
    ({"image": pa.array([b"x"]), "label": pa.array([-1])}, {"key_column": None}, None),
    ({"image": pa.array([b"x"]), "label": pa.array([2**24 + 1])}, {},
     r"row 0 \(column 'label'\): integer label 16777217 cannot be stored exactly"),
])
def test_unusable_columns_are_named(tmp_path, columns, rules, message):
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table(columns), path)
    if message is None:
        (s,) = list(P.ParquetReader(path, **rules))
        assert (s.key, s.flag, s.label, s.image) == (0, 0, -1.0, b"x")
        return
    reader = P.ParquetReader(path, **rules)
    for _ in range(2):  # and again: a reader that refused a file keeps refusing it
        with pytest.raises((RecordFormatError, ImageEncodeError), match=message) as info:
            list(reader)
        assert "t.parquet" in str(info.value)


# -- damage --------------------------------------------------------------------------------

@pytest.fixture()
def written(tmp_path, sets):
    samples = [sample_from_payload(k, p) for k, p in sets["classes"]]
    _, (path,) = write_parquet(tmp_path, samples, row_group_rows=4)
    return path, samples


def test_a_cut_file_names_its_end(written, tmp_path):
    path, _ = written
    data = read_bytes(path)
    cut = tmp_path / "cut.parquet"
    cut.write_bytes(data[:len(data) // 2])
    for call in (lambda: P.scan(cut), lambda: P.check(cut)):
        with pytest.raises(RecordFormatError, match=r"cut.parquet, byte offset %d: not a "
                                                    r"readable Parquet file: .*footer.*convert "
                                                    r"it again" % (len(data) // 2)):
            call()
    (tmp_path / "zero.parquet").write_bytes(b"")
    with pytest.raises(RecordFormatError, match="zero.parquet"):
        P.check(tmp_path / "zero.parquet")


def test_a_damaged_page_is_found_by_its_checksum(written, tmp_path):
    path, samples = written
    data = bytearray(read_bytes(path))
    at = data.find(samples[5].image) + 500
    data[at] ^= 0x20
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(bytes(data))
    meta = pq.ParquetFile(bad).metadata.row_group(1).column(0)
    with pytest.raises(RecordFormatError, match=r"bad.parquet, byte offset %d: row group 1 "
                                                r"\(rows 4..7\) cannot be read: .*CRC"
                                                % meta.data_page_offset):
        P.check(bad)
    assert P.read(bad, (0, 0)).image == samples[0].image  # the other row groups still read
    head = bytearray(read_bytes(path))
    head[0:4] = b"PARX"
    (tmp_path / "head.parquet").write_bytes(bytes(head))
    with pytest.raises(RecordFormatError, match=r"head.parquet, byte offset 0: starts with "
                                                r"b'PARX', not Parquet's magic"):
        P.check(tmp_path / "head.parquet")


def test_edited_columns_and_repeated_keys_are_reported(tmp_path, sets):
    samples = [sample_from_payload(k, p) for k, p in sets["vectors"]]
    _, (path,) = write_parquet(tmp_path, samples)
    table = pq.read_table(path)
    odd = [i for i, s in enumerate(samples) if s.head is not None][0]
    ids = table.column("id").to_pylist()
    ids[odd] += 1
    edited = table.set_column(table.schema.get_field_index("id"), "id",
                              pa.array(ids, pa.uint64()))
    pq.write_table(edited, tmp_path / "edited.parquet")
    with pytest.raises(RecordFormatError, match=r"row %d: recordio_header .* no longer "
                                                r"matches the flag, label, id and id2 columns"
                                                % odd):
        P.check(tmp_path / "edited.parquet")
    keys = table.column("key").to_pylist()
    keys[3] = keys[1]
    twice = table.set_column(table.schema.get_field_index("key"), "key",
                             pa.array(keys, pa.uint64()))
    pq.write_table(twice, tmp_path / "twice.parquet")
    with pytest.raises(DuplicateKeyError, match=r"key %d is at rows 1 and 3" % keys[1]):
        P.check(tmp_path / "twice.parquet")
    summary = P.check(path)
    assert summary["rows"] == len(samples) and summary["encodings"]["none"] == 1
    assert summary["row_groups"] == pq.ParquetFile(path).num_row_groups


def test_writing_and_reading_leave_pandas_alone(tmp_path, sets):
    """pyarrow's conversions from Python objects and to numpy import pandas where it is
    installed (datasets installs it): over a second and ~100 MB in every worker process.
    Writing, reading and checking never need it."""
    samples = [sample_from_payload(k, p) for k, p in sets["vectors"]]
    with open(tmp_path / "samples.pickle", "wb") as f:
        pickle.dump(samples, f)
    child = ("import pickle, sys\n"
             "from mxnet_recpack.formats import parquet as P\n"
             "samples = pickle.load(open('samples.pickle', 'rb'))\n"
             "layout = P.LayoutScan().add_all(samples).layout()\n"
             "with P.ShardWriter('x.parquet', layout, row_group_rows=3) as w:\n"
             "    w.append([P.encode(s) for s in samples])\n"
             "back = [P.read('x.parquet', loc) for loc in P.scan('x.parquet')]\n"
             "P.check('x.parquet')\n"
             "assert len(back) == len(samples)\n"
             "print(sorted(m for m in sys.modules if m.split('.')[0] == 'pandas'))\n")
    done = subprocess.run([sys.executable, "-c", child], cwd=str(tmp_path), timeout=300,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
