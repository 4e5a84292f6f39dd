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

    from .sources.discover import make_list
    from .samples import make_image_folder

    images = os.path.join(out, "images")
    t0 = time.monotonic()
    files = make_image_folder(images, classes=3, per_class=20, seed=0)
    log.info("1. wrote %d sample photos (3 classes) under %s", len(files), images)

    prefix = os.path.join(out, "demo")
    lists = make_list(images, prefix, recursive=True, train_ratio=0.8)
    log.info("2. listed them like `im2rec.py --list --recursive --train-ratio 0.8`: %s",
             ", ".join(os.path.basename(p) for p in lists))

    import mxnet as mx
    from mxnet.gluon.data.vision import transforms

    from . import ImageListDataset

    for lst in sorted(lists):
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
    log.info("done in %.1f s; output in %s", time.monotonic() - t0, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
