"""IDX files (MNIST, Fashion-MNIST) from disk, numpy only.

IDX layout (LeCun et al., http://yann.lecun.com/exdb/mnist/): a 4-byte magic
``0x00 0x00 <type> <ndim>``, then ``ndim`` big-endian uint32 dimensions, then the values
big-endian in C order. Types: 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32,
0x0E float64. Files may be gzip-compressed (``.gz``).

``load_mnist`` / ``load_fashion_mnist`` return ``(x_train, y_train, x_test, y_test)`` with images
``uint8 (N, 28, 28, 1)`` NHWC (ready for ``ArrayLoader``) and labels ``int64 (N,)`` in 0..9.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

from onebit.errors import DatasetError, ShapeError

__all__ = [
    "read_idx",
    "load_idx_dataset",
    "load_mnist",
    "load_fashion_mnist",
    "MNIST_MEAN",
    "MNIST_STD",
    "FASHION_MNIST_MEAN",
    "FASHION_MNIST_STD",
    "FASHION_MNIST_CLASSES",
]

MNIST_MEAN, MNIST_STD = (0.1307,), (0.3081,)
FASHION_MNIST_MEAN, FASHION_MNIST_STD = (0.2860,), (0.3530,)
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")

_TYPES = {0x08: np.dtype(np.uint8), 0x09: np.dtype(np.int8), 0x0B: np.dtype(">i2"),
          0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
# Standard names; some mirrors write "train-images.idx3-ubyte" (a dot instead of the dash).
_FILES = {"x_train": "train-images-idx3-ubyte", "y_train": "train-labels-idx1-ubyte",
          "x_test": "t10k-images-idx3-ubyte", "y_test": "t10k-labels-idx1-ubyte"}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file (plain or gzip) into a native-endian numpy array of its stored shape."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError) as e:
        raise DatasetError(f"{path}: could not read it as an IDX file ({e})") from e
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _TYPES:
        raise DatasetError(f"{path}: expected an IDX magic 00 00 <type in "
                           f"{sorted(hex(t) for t in _TYPES)}> <ndim>, got {raw[:4].hex(' ')}")
    dtype, ndim = _TYPES[raw[2]], raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DatasetError(f"{path}: truncated IDX header ({len(raw)} bytes for {ndim} dimensions)")
    shape = tuple(int(d) for d in np.frombuffer(raw, ">u4", ndim, 4))
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        raise DatasetError(f"{path}: IDX header says shape {shape} of {dtype} = {expected} bytes "
                           f"in all, the file has {len(raw)}; it is truncated or corrupt")
    data = np.frombuffer(raw, dtype, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="))


def _find_file(folder: Path, stem: str) -> Path:
    dotted = stem.replace("-idx", ".idx")
    for name in (stem, stem + ".gz", dotted, dotted + ".gz"):
        if (folder / name).is_file():
            return folder / name
    raise DatasetError(f"{folder}: expected {stem} or {stem}.gz, it is missing")


def load_idx_dataset(folder: str | os.PathLike, name: str = "IDX dataset"
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Load the four standard IDX files of an MNIST-style folder (see module docstring)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"{name} not found: {folder} is not a folder; expected the four files "
                           f"{', '.join(_FILES.values())} (optionally .gz)")
    arrays = {k: read_idx(_find_file(folder, stem)) for k, stem in _FILES.items()}
    out = []
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.dtype != np.uint8 or x.ndim != 3:
            raise ShapeError(f"{name} x_{split}: expected uint8 images (N, H, W), got {x.dtype} {x.shape}")
        if y.ndim != 1 or y.shape[0] != x.shape[0]:
            raise ShapeError(f"{name} y_{split}: expected ({x.shape[0]},) labels, got {y.shape}")
        if y.size and (int(y.min()) < 0 or int(y.max()) > 9):
            raise DatasetError(f"{name} y_{split}: expected labels in 0..9, found "
                               f"[{int(y.min())}, {int(y.max())}]")
        out += [np.ascontiguousarray(x[..., None]), y.astype(np.int64)]
    return tuple(out)  # type: ignore[return-value]


def _locate(path, env: str, defaults: list[Path], name: str, hint: str) -> Path:
    if path is not None:
        return Path(path).expanduser()
    if os.environ.get(env):
        return Path(os.environ[env]).expanduser()
    for d in defaults:
        if d.is_dir():
            return d
    raise DatasetError(f"{name} not found: ${env} is not set and none of "
                       f"{', '.join(str(d) for d in defaults)} exists; {hint}")


def load_mnist(path: str | os.PathLike | None = None):
    """MNIST (LeCun et al. 1998) from a folder of IDX files: ``path``, ``$ONEBIT_MNIST``, or
    ``../shared/data/mnist`` next to the repository. Returns uint8 NHWC images, int64 labels."""
    defaults = [Path(__file__).resolve().parents[3].parent / "shared" / "data" / "mnist"]
    folder = _locate(path, "ONEBIT_MNIST", defaults, "MNIST",
                     "set ONEBIT_MNIST to a folder holding train-images-idx3-ubyte(.gz) etc.")
    return load_idx_dataset(folder, "MNIST")


def load_fashion_mnist(path: str | os.PathLike | None = None):
    """Fashion-MNIST (Xiao et al. 2017) from a folder of IDX files: ``path``,
    ``$ONEBIT_FASHION_MNIST``, or ``/usr/share/datasets/fashion-mnist`` (Debian package
    ``dataset-fashion-mnist``). Returns uint8 NHWC images, int64 labels."""
    defaults = [Path("/usr/share/datasets/fashion-mnist"),
                Path(__file__).resolve().parents[3].parent / "shared" / "data" / "fashion-mnist"]
    folder = _locate(path, "ONEBIT_FASHION_MNIST", defaults, "Fashion-MNIST",
                     "apt-get install dataset-fashion-mnist, or set ONEBIT_FASHION_MNIST")
    return load_idx_dataset(folder, "Fashion-MNIST")
