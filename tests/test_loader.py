"""RecordLoader: every batch is what a real reader (MXNet's where it is installed, else DALI's)
reads from the same file, labels and pixels, under fork, spawn and forkserver; epochs
reshuffle from the seed; ranks cover an epoch exactly once; a killed, a stuck or a failing
worker ends the epoch with an error naming it; the ring's memory is left nowhere."""
import os
import signal
import time

import numpy as np
import pytest

import mxnet_recpack as rp
from mxnet_recpack import RecordDataset, RecordLoader
from mxnet_recpack.errors import OptionError, TransformError, WorkerError

pytestmark = pytest.mark.timeout(300)


def _jpegs(photos, n, size=(40, 48), vary=False):
    import cv2
    out = []
    for i in range(n):
        _, photo = photos[i % len(photos)]
        h, w = (size[0] + (i % 3) * 4, size[1]) if vary else size
        y, x = (i * 7) % 50, (i * 11) % 50
        out.append(cv2.imencode(".jpg", np.ascontiguousarray(photo[y:y + h, x:x + w, ::-1]))[1]
                   .tobytes())
    return out


@pytest.fixture(scope="module")
def rec(tmp_path_factory, photos):
    """37 JPEGs of one size, keys out of order, labels 0-4."""
    path = tmp_path_factory.mktemp("loader") / "a.rec"
    with rp.RecordFileWriter(str(path)) as w:
        for i, data in enumerate(_jpegs(photos, 37)):
            w.write(data, float(i % 5), key=1000 - 3 * i)
    return str(path)


def _epoch(loader):
    got = []
    for images, labels in loader:
        got.append((np.array(images), np.array(labels)))
    return got


def test_batches_are_what_a_real_reader_reads(rec, real_reader):
    theirs = real_reader(rec)
    loader = RecordLoader(rec, 8, num_workers=2)
    assert len(loader) == 5
    batches = _epoch(loader)
    loader.close()
    assert [len(b[1]) for b in batches] == [8, 8, 8, 8, 5]
    images = np.concatenate([b[0] for b in batches])
    labels = np.concatenate([b[1] for b in batches])
    assert images.shape == (37, 40, 48, 3) and images.dtype == np.uint8
    assert labels.dtype == np.float32
    np.testing.assert_array_equal(labels, [t[0] for t in theirs])
    for mine, (_, _, pixels) in zip(images, theirs):
        assert np.abs(mine.astype(int) - pixels.astype(int)).max() <= 1  # decoder rounding


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_every_start_method_gives_the_same_epochs(rec, method):
    ds = RecordDataset(rec)
    expected = [(np.stack([ds[int(p)][0] for p in batch]), [ds[int(p)][1] for p in batch])
                for batch in RecordLoader(ds, 6, shuffle=True, seed=3).plan.batches(0)]
    with RecordLoader(ds, 6, shuffle=True, seed=3, num_workers=2, start_method=method) as L:
        got = _epoch(L)
    assert len(got) == len(expected) == 7
    for (images, labels), (want_images, want_labels) in zip(got, expected):
        np.testing.assert_array_equal(images, want_images)
        np.testing.assert_array_equal(labels, np.float32(want_labels))


def test_epochs_reshuffle_from_the_seed_and_set_epoch_chooses(rec):
    def order(loader):
        return np.concatenate([labels for _, labels in _epoch(loader)])

    def keys(seed, epoch):
        loader = RecordLoader(rec, 5, shuffle=True, seed=seed, num_workers=0)
        return loader.plan.positions(epoch)

    a = RecordLoader(rec, 5, shuffle=True, seed=7, num_workers=2)
    first, second = order(a), order(a)  # each iteration is the next epoch
    a.set_epoch(0)
    again = order(a)
    a.close()
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(keys(7, 0), keys(7, 1)) and not np.array_equal(keys(7, 0),
                                                                               keys(8, 0))
    assert sorted(keys(7, 1)) == list(range(37))
    np.testing.assert_array_equal(np.sort(first), np.sort(second))
    plain = RecordLoader(rec, 5, num_workers=0)
    np.testing.assert_array_equal(plain.plan.positions(4), np.arange(37))


@pytest.mark.parametrize("drop_last", [False, True])
def test_two_ranks_cover_an_epoch_exactly_once(rec, drop_last):
    """DistributedSampler's split: padded with the first positions (every record at least
    once, one twice), or cut (drop_last: every rank the same count, one record left out)."""
    seen = []
    for rank in (0, 1):
        with RecordLoader(rec, 4, shuffle=True, seed=1, rank=rank, world_size=2,
                          num_workers=2, drop_last=drop_last) as loader:
            loader.set_epoch(5)
            positions = loader.plan.positions(5)
            batches = _epoch(loader)
        assert len(batches) == len(loader) == (4 if drop_last else 5)
        labels = np.concatenate([b[1] for b in batches])
        ds = RecordDataset(rec)
        n = sum(len(b[1]) for b in batches)
        np.testing.assert_array_equal(labels, [ds[int(p)][1] for p in positions[:n]])
        seen.append(positions)
    both = np.concatenate(seen)
    if drop_last:
        assert len(seen[0]) == len(seen[1]) == 18 and len(set(both)) == 36
    else:
        assert len(seen[0]) == len(seen[1]) == 19 and set(both) == set(range(37))
        assert len(both) == 38  # one position twice: the pad
    assert not set(seen[0]) & set(seen[1]) or not drop_last


def test_a_killed_worker_ends_the_epoch_naming_it(rec):
    loader = RecordLoader(rec, 4, num_workers=2, prefetch=1)
    batches = iter(loader)
    next(batches)
    victim = loader._pool.procs[1]
    os.kill(victim.pid, signal.SIGKILL)
    start = time.monotonic()
    with pytest.raises(WorkerError, match=r"worker 1 \(pid %d\) died .*killed by SIGKILL"
                                          % victim.pid):
        for _ in batches:
            pass
    assert time.monotonic() - start < 10
    assert loader._pool is None  # closed; the next epoch starts new workers
    assert sum(len(labels) for _, labels in loader) == 37
    loader.close()


def test_a_stuck_worker_ends_the_epoch_after_the_timeout(rec):
    loader = RecordLoader(rec, 4, num_workers=2, timeout=2, prefetch=1)
    batches = iter(loader)
    next(batches)
    stuck = loader._pool.procs[1]
    os.kill(stuck.pid, signal.SIGSTOP)
    try:
        start = time.monotonic()
        with pytest.raises(WorkerError, match=r"worker 1 \(pid %d\) has held batch \d+ "
                                              r"\(positions .*\) for more than 2 s" % stuck.pid):
            for _ in batches:
                pass
        assert time.monotonic() - start < 15
    finally:
        os.kill(stuck.pid, signal.SIGCONT)
        loader.close()


class _FailOn:
    def __init__(self, position):
        self.position = position

    def __call__(self, image):
        if image[0, 0, 0] == self.position:
            raise ValueError("a bad crop")
        return image


def test_a_failing_transform_names_the_record(rec):
    ds = RecordDataset(rec)
    target = int(ds[30][0][0, 0, 0])
    bad = RecordDataset(rec, transform=_FailOn(target))
    for workers in (0, 2):
        with RecordLoader(bad, 8, num_workers=workers) as loader:
            with pytest.raises(TransformError, match=r"a\.rec, byte offset \d+ \(key %d, "
                                                     r"position 30\): ValueError: a bad crop"
                                                     % int(ds.keys[30])):
                _epoch(loader)


def test_a_batch_stays_valid_while_the_next_is_taken_and_copies_are_their_own(rec):
    loader = RecordLoader(rec, 4, num_workers=2, prefetch=2)
    it = iter(loader)
    held, _ = next(it)
    snapshot = held.copy()
    nxt, _ = next(it)
    np.testing.assert_array_equal(held, snapshot)  # the batch before the current one: kept
    for _ in range(4):
        next(it)
    assert not np.array_equal(held, snapshot)  # its slot was reused, as documented
    loader.close()
    with RecordLoader(rec, 4, num_workers=2, copy=True) as loader:
        kept = [images for images, _ in loader]
    ds = RecordDataset(rec)
    np.testing.assert_array_equal(kept[0][0], ds[0][0])
    np.testing.assert_array_equal(kept[-1][0], ds[36][0])


def test_an_abandoned_epoch_then_a_whole_one(rec):
    with RecordLoader(rec, 4, num_workers=2) as loader:
        for n, _ in enumerate(loader):
            if n == 2:
                break
        loader.set_epoch(0)
        labels = np.concatenate([b for _, b in loader])
    ds = RecordDataset(rec)
    np.testing.assert_array_equal(labels, [ds[i][1] for i in range(37)])


def test_items_of_different_sizes_come_as_lists(tmp_path, photos):
    path = str(tmp_path / "v.rec")
    with rp.RecordFileWriter(path) as w:
        for i, data in enumerate(_jpegs(photos, 9, vary=True)):
            w.write(data, [float(i), 1.0], key=i)
    with RecordLoader(path, 4, num_workers=2) as loader:
        batches = list(loader)
    images, labels = batches[0]
    assert isinstance(images, list) and [im.shape[0] for im in images] == [40, 44, 48, 40]
    assert labels.shape == (4, 2) and labels.dtype == np.float32


def test_no_shared_memory_is_left_behind(rec):
    def rings():
        folder = "/dev/shm" if os.path.isdir("/dev/shm") else None
        return {n for n in os.listdir(folder) if n.startswith("recpack-ring-")} if folder \
            else set()
    before = rings()
    loader = RecordLoader(rec, 4, num_workers=2)
    next(iter(loader))
    assert rings() == before  # the name goes once the workers have mapped it
    os.kill(loader._pool.procs[0].pid, signal.SIGKILL)
    loader.close()
    assert rings() == before


def test_options_are_checked(rec):
    for kwargs, message in (({"rank": 2, "world_size": 2}, r"rank = 2 is not valid"),
                            ({"num_workers": -1}, r"num_workers = -1"),
                            ({"output": "jax"}, r"output = 'jax' is not valid"),
                            ({"prefetch": 0}, r"prefetch = 0"),
                            ({"timeout": 0}, r"timeout = 0")):
        with pytest.raises(OptionError, match=message):
            RecordLoader(rec, 4, **kwargs)
    with pytest.raises(OptionError, match=r"batch_size = 0"):
        RecordLoader(rec, 0)


@pytest.mark.torch
def test_torch_batches_share_the_ring(rec):
    import torch
    with RecordLoader(rec, 8, num_workers=2, output="torch") as loader:
        images, labels = next(iter(loader))
        assert isinstance(images, torch.Tensor) and images.dtype == torch.uint8
        assert images.shape == (8, 40, 48, 3) and labels.dtype == torch.float32
        ds = RecordDataset(rec)
        np.testing.assert_array_equal(images[3].numpy(), ds[3][0])


@pytest.mark.mxnet
def test_mxnet_batches_are_ndarrays(rec):
    import mxnet as mx
    with RecordLoader(rec, 8, num_workers=2, output="mxnet") as loader:
        images, labels = next(iter(loader))
    assert isinstance(images, mx.nd.NDArray) and images.shape == (8, 40, 48, 3)
    assert labels.dtype == np.float32
    np.testing.assert_array_equal(images[2].asnumpy(), RecordDataset(rec)[2][0])


@pytest.mark.s3
def test_records_at_a_url_come_in_coalesced_requests(rec, s3, s3_proxy):
    """A batch's records at s3:// are fetched in a few ranged requests, not one each."""
    from mxnet_recpack.sources.records import RecordSet
    fs, bucket = s3
    fs.put_file(rec, "%s/l/a.rec" % bucket)
    fs.put_file(rec[:-4] + ".idx", "%s/l/a.idx" % bucket)
    options = {"client_kwargs": {"endpoint_url": s3_proxy.url}}
    remote, local = RecordSet("s3://%s/l/a.rec" % bucket, storage_options=options), \
        RecordSet(rec)
    positions = [5, 3, 4, 30, 31, 6, 0]
    before = len(s3_proxy.exchanges)
    got = remote.records_at(positions)
    gets = [e for e in s3_proxy.exchanges[before:] if e[0] == "GET"]
    assert 1 <= len(gets) <= 2, gets  # one range covers the whole small file's batch
    for (key, header, body), i in zip(got, positions):
        want = local.record(i)
        assert key == want[0] and header == want[1] and bytes(body) == bytes(want[2])


class _EpochImages:
    """A map-style dataset whose items show the epoch it was told (as RecordDataset's seeded
    random crops follow it)."""

    def __init__(self):
        self.epoch = -1

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __len__(self):
        return 10

    def __getitem__(self, i):
        return np.full((2, 2, 3), self.epoch + 1, np.uint8), float(i)


@pytest.mark.parametrize("workers", [0, 2])
def test_the_workers_datasets_follow_the_epoch(workers):
    with RecordLoader(_EpochImages(), 4, num_workers=workers) as loader:
        loader.set_epoch(6)
        first = {int(v) for images, _ in loader for v in np.unique(images)}
        second = {int(v) for images, _ in loader for v in np.unique(images)}
    assert first == {7} and second == {8}
