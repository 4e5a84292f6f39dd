"""``make demo``: pack the built-in sample photos into a RecordIO file and read it back.

Run as ``python -m mxnet_recpack.demo [OUTPUT_DIR]`` (default ``demo_output``).
"""

import logging
import os
import sys
import time

__all__ = ["main"]


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    out = os.path.abspath(argv[0] if argv else "demo_output")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    log = logging.getLogger("demo")
    logging.getLogger("mxnet_recpack").setLevel(logging.WARNING)  # the steps say it all

    from .samples import make_image_folder
    from .sources.discover import make_list

    images = os.path.join(out, "images")
    t0 = time.monotonic()
    files = make_image_folder(images, classes=3, per_class=20, seed=0, photos="bundled")
    log.info("1. wrote %d sample photos (3 classes) under %s", len(files), images)

    prefix = os.path.join(out, "demo")
    lists = make_list(images, prefix, recursive=True, train_ratio=0.8)
    log.info("2. listed them like `im2rec.py --list --recursive --train-ratio 0.8`: %s",
             ", ".join(os.path.basename(p) for p in lists))
    try:
        import mxnet  # noqa: F401
    except ImportError:
        _without_mxnet(sorted(lists), images, prefix, log)
    else:
        _with_mxnet(sorted(lists), images, prefix, log)
    log.info("done in %.1f s; output in %s", time.monotonic() - t0, out)
    return 0


def _with_mxnet(lists, images, prefix, log):
    """Gluon's transforms on the way in, MXNet's own ImageRecordIter reading back."""
    import mxnet as mx
    from mxnet.gluon.data.vision import transforms

    from . import ImageListDataset

    for lst in lists:
        rec = lst[:-4] + ".rec"
        ds = ImageListDataset(lst, root=images)
        ds.transform_first(transforms.Resize(128, keep_ratio=True)).to_recordio(
            rec, num_workers=2)
        log.info("3. packed %s -> %s (+ .idx), shorter edge resized to 128",
                 os.path.basename(lst), os.path.basename(rec))

    rec = prefix + "_train.rec"
    it = mx.io.ImageRecordIter(path_imgrec=rec, path_imgidx=rec[:-4] + ".idx",
                               data_shape=(3, 112, 112), batch_size=16, shuffle=True)
    seen, labels = 0, set()
    for batch in it:
        n = batch.data[0].shape[0] - batch.pad
        seen += n
        labels.update(int(x) for x in batch.label[0].asnumpy()[:n])
    log.info("4. mx.io.ImageRecordIter read back %d images, labels %s", seen, sorted(labels))


def _without_mxnet(lists, images, prefix, log):
    """No MXNet installed: im2rec's own resize, then this package's reader and verify."""
    from . import RecordDataset, im2rec
    from .ops.verify import verify

    log.info("   (MXNet is not installed: packing with im2rec's options and reading back "
             "with mxnet_recpack.RecordDataset; pip install mxnet_recpack[mxnet] on Python "
             "3.8-3.11 adds the Gluon path)")
    for lst in lists:
        rec = im2rec(lst, dataset_params={"root": images, "resize": 128, "num_thread": 2})
        log.info("3. packed %s -> %s (+ .idx), shorter edge resized to 128",
                 os.path.basename(lst), os.path.basename(rec))
    rec = prefix + "_train.rec"
    result = verify(rec)
    log.info("4. verify: %d records, %s", result.records,
             "no problems" if not result.problems else "; ".join(result.problems))
    ds = RecordDataset(rec)
    labels = sorted({int(ds[i][1]) for i in range(len(ds))})
    image = ds[0][0]
    log.info("5. RecordDataset read back %d images (the first %d x %d), labels %s",
             len(ds), image.shape[1], image.shape[0], labels)

if __name__ == "__main__":
    sys.exit(main())
