"""Built-in sample data: real photos that ship inside scikit-image and scikit-learn.

Used by ``make demo``, the tests, the tutorials and the benchmarks to build deterministic image
folders without downloading anything. Needs ``scikit-image`` and ``scikit-learn`` (the ``test``
extra installs them).
"""

import os

import numpy as np

__all__ = ["sample_photos", "make_image_folder"]

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
                      seed=0, ext=".jpg"):
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

    Returns
    -------
    list of str
        The files written, relative to ``root``, sorted.
    """
    import cv2
    photos = sample_photos()
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
