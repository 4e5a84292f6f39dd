"""Built-in sample data: real photos, without downloading anything.

Two sets: the twelve colour photos that ship inside scikit-image and scikit-learn (the
``test`` extra installs them; the tests, tutorials and benchmarks use them), and five small
public-domain and CC0 photos that ship inside this package (``sample_data/``), so the demo and
the README's first steps run from a plain ``pip install``.
"""

import os

import numpy as np

__all__ = ["sample_photos", "bundled_photos", "make_image_folder"]

_SKIMAGE_COLOR = ("astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg", "ihc.png",
                  "hubble_deep_field.jpg", "retina.jpg", "motorcycle_left.png",
                  "motorcycle_right.png", "color.png")
_SKLEARN = ("china.jpg", "flower.jpg")


def sample_photos():
    """The colour photos shipped by scikit-image and scikit-learn, as ``(name, RGB uint8)``.

    Returns
    -------
    list of (str, numpy.ndarray)
        Sorted by name; each image H x W x 3 (300 to 1411 pixels a side).
    """
    import cv2
    try:
        import skimage.data
        import sklearn.datasets
    except ImportError as exc:  # pragma: no cover - the test extra installs both
        raise ImportError("sample photos come from scikit-image and scikit-learn: "
                          "pip install 'mxnet_recpack[test]'") from exc
    folders = [(os.path.dirname(skimage.data.__file__), _SKIMAGE_COLOR),
               (os.path.join(os.path.dirname(sklearn.datasets.__file__), "images"), _SKLEARN)]
    photos = []
    for folder, names in folders:
        for name in names:
            path = os.path.join(folder, name)
            if not os.path.exists(path):
                continue
            bgr = cv2.imread(path, cv2.IMREAD_COLOR)
            if bgr is not None:
                photos.append((os.path.splitext(name)[0], cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)))
    if not photos:
        raise FileNotFoundError("no sample photos found in scikit-image/scikit-learn")
    return sorted(photos, key=lambda p: p[0])


def bundled_photos():
    """The five photos that ship in this package, as ``(name, RGB uint8)``, sorted by name."""
    import cv2
    folder = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sample_data")
    photos = []
    for name in sorted(os.listdir(folder)):
        if name.endswith(".jpg"):
            bgr = cv2.imread(os.path.join(folder, name), cv2.IMREAD_COLOR)
            photos.append((name[:-4], cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)))
    return photos


def _photos(which):
    if which == "bundled":
        return bundled_photos()
    if which == "scikit":
        return sample_photos()
    if which is None:
        try:
            return sample_photos()
        except ImportError:
            return bundled_photos()
    raise ValueError("photos must be 'scikit', 'bundled' or None, got %r" % (which,))


def _variant(photo, rng, long_side):
    """A random crop of ``photo`` scaled so its longer side is ``long_side``."""
    import cv2
    h, w = photo.shape[:2]
    ch = int(h * rng.uniform(0.55, 1.0))
    cw = int(w * rng.uniform(0.55, 1.0))
    y = int(rng.randint(0, h - ch + 1))
    x = int(rng.randint(0, w - cw + 1))
    crop = photo[y:y + ch, x:x + cw]
    if rng.rand() < 0.5:
        crop = crop[:, ::-1]
    scale = long_side / max(ch, cw)
    size = (max(1, int(round(cw * scale))), max(1, int(round(ch * scale))))
    inter = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    return cv2.resize(np.ascontiguousarray(crop), size, interpolation=inter)


def make_image_folder(root, *, classes=3, per_class=10, long_side=(300, 640), quality=90,
                      seed=0, ext=".jpg", photos=None):
    """Write a deterministic ImageNet-like folder ``root/class_K/NAME_I.jpg`` from sample photos.

    Each class draws from its own photos, so the classes are visually distinct (a network can
    learn them). The same arguments always give the same files, byte for byte.

    Parameters
    ----------
    root : str
        Created if missing.
    classes, per_class : int
    long_side : (int, int)
        Range of the longer image side in pixels; (1600, 3000) gives camera-size photos.
    quality : int
        JPEG quality of the files written.
    seed : int
    ext : {'.jpg', '.png'}
    photos : {None, 'scikit', 'bundled'}
        Which photos: scikit-image's and scikit-learn's (``'scikit'``), the five that ship in
        this package (``'bundled'``), or None: scikit's when they are installed, else bundled.

    Returns
    -------
    list of str
        The files written, relative to ``root``, sorted.
    """
    import cv2
    photos = _photos(photos)
    rng = np.random.RandomState(seed)
    written = []
    for c in range(classes):
        folder = os.path.join(root, "class_%d" % c)
        os.makedirs(folder, exist_ok=True)
        mine = [photos[i] for i in range(len(photos)) if i % classes == c % len(photos)] or photos
        for i in range(per_class):
            name, photo = mine[i % len(mine)]
            img = _variant(photo, rng, int(rng.randint(long_side[0], long_side[1] + 1)))
            rel = os.path.join("class_%d" % c, "%s_%04d%s" % (name, i, ext))
            params = [cv2.IMWRITE_JPEG_QUALITY, quality] if ext == ".jpg" else []
            ok, buf = cv2.imencode(ext, cv2.cvtColor(img, cv2.COLOR_RGB2BGR), params)
            if not ok:  # pragma: no cover
                raise RuntimeError("could not encode sample image %s" % rel)
            with open(os.path.join(root, rel), "wb") as f:
                f.write(buf.tobytes())
            written.append(rel)
    return sorted(written)


def main(argv=None):
    """``python -m mxnet_recpack.samples FOLDER``: an image folder of the photos that ship in
    the package (``FOLDER/class_K/NAME_I.jpg``), for trying the tools without data."""
    import argparse
    import sys
    parser = argparse.ArgumentParser(
        prog="python -m mxnet_recpack.samples",
        description="Write a folder of sample photos in class subfolders (the five photos that "
        "ship with mxnet_recpack, cropped and scaled: deterministic, no download).")
    parser.add_argument("folder", help="where to write them (created if missing)")
    parser.add_argument("--classes", type=int, default=3, help="subfolders (default: 3)")
    parser.add_argument("--per-class", type=int, default=8, help="photos in each (default: 8)")
    args = parser.parse_args(argv)
    if os.path.isdir(args.folder) and os.listdir(args.folder):
        import tempfile
        with tempfile.TemporaryDirectory() as scratch:  # what this command would write
            want = make_image_folder(scratch, classes=args.classes,
                                     per_class=args.per_class, photos="bundled")
            same = all(_same_file(os.path.join(scratch, rel), os.path.join(args.folder, rel))
                       for rel in want)
        if not same:
            parser.error("%s is not empty and does not hold these photos: give a new folder"
                         % args.folder)
        sys.stdout.write("%s already holds these %d photos: kept\n" % (args.folder, len(want)))
        return 0
    written = make_image_folder(args.folder, classes=args.classes, per_class=args.per_class,
                                photos="bundled")
    sys.stdout.write("wrote %d photos in %d class folders under %s\n"
                     % (len(written), args.classes, args.folder))
    return 0


def _same_file(a, b):
    try:
        with open(a, "rb") as f, open(b, "rb") as g:
            return f.read() == g.read()
    except OSError:
        return False


if __name__ == "__main__":
    raise SystemExit(main())
