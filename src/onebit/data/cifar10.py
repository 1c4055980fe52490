"""CIFAR-10 from disk: ``load_cifar10(path) -> (x_train, y_train, x_test, y_test)``, numpy only.

Accepted layouts (Krizhevsky 2009, *Learning Multiple Layers of Features from Tiny Images*):

- a ``.npz`` archive with the keys ``x_train, y_train, x_test, y_test`` (images ``uint8
  (N, 32, 32, 3)`` NHWC RGB, labels ``(N,)`` in 0..9), like ``shared/data/cifar10/cifar10.npz``;
- a folder holding ``cifar10.npz``;
- the official "CIFAR-10 python version" folder ``cifar-10-batches-py`` (``data_batch_1`` ..
  ``data_batch_5`` and ``test_batch``), or a folder that contains it.

Search order when no path is given: ``$ONEBIT_CIFAR10``, then ``../shared/data/cifar10``
relative to the repository root (the parent of ``src/``) and to the working directory.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np

from onebit.errors import DatasetError, DTypeError, ShapeError

__all__ = [
    "CIFAR10_CLASSES",
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "ENV_VAR",
    "NPZ_NAME",
    "BATCHES_DIR",
    "find_cifar10",
    "load_cifar10",
    "validate_split",
]

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")
# Per-channel statistics of the official training set in [0, 1] scale (the values given in
# shared/data/cifar10/README.md; the JPEG-derived copy matches the means to ~1e-4 and has stds
# ~0.001-0.002 lower, which does not matter for normalisation).
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)

ENV_VAR = "ONEBIT_CIFAR10"
NPZ_NAME = "cifar10.npz"
BATCHES_DIR = "cifar-10-batches-py"
_TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
_TEST_BATCH = "test_batch"
_HOW_TO_FIX = (f"set {ENV_VAR}=/path/to/cifar10 (a {NPZ_NAME} file, a folder holding it, or the "
               f"official {BATCHES_DIR} folder) or pass the path (onebit demo --data PATH)")


def _repo_root() -> Path:
    # src/onebit/data/cifar10.py -> parents: data, onebit, src, <repo root>
    return Path(__file__).resolve().parents[3]


def _default_candidates() -> list[Path]:
    """Places searched when neither a path nor $ONEBIT_CIFAR10 is given, in order."""
    out: list[Path] = []
    for base in (_repo_root(), Path.cwd()):
        cand = (base / ".." / "shared" / "data" / "cifar10").resolve()
        if cand not in out:
            out.append(cand)
    return out


def _resolve(path: Path) -> Path | None:
    """The npz file or python-batches folder that ``path`` designates, or None if it holds neither."""
    if path.is_file():
        return path.parent if path.name in _TRAIN_BATCHES + (_TEST_BATCH,) else path
    if path.is_dir():
        if (path / NPZ_NAME).is_file():
            return path / NPZ_NAME
        if (path / _TEST_BATCH).is_file():
            return path
        if (path / BATCHES_DIR / _TEST_BATCH).is_file():
            return path / BATCHES_DIR
    return None


def find_cifar10(path: str | os.PathLike | None = None) -> Path:
    """Locate CIFAR-10 on disk: the ``.npz`` file or the ``cifar-10-batches-py`` folder to read.

    ``path`` (if given) wins, then ``$ONEBIT_CIFAR10``, then ``../shared/data/cifar10`` next to the
    repository and to the working directory. Raises DatasetError listing every place tried.
    """
    if path is not None:
        explicit = [(Path(path).expanduser(), "the path passed in")]
    elif os.environ.get(ENV_VAR):
        explicit = [(Path(os.environ[ENV_VAR]).expanduser(), f"${ENV_VAR}")]
    else:
        explicit = []
    for p, origin in explicit:
        found = _resolve(p)
        if found is None:
            what = "does not exist" if not p.exists() else (
                f"holds neither {NPZ_NAME}, nor {BATCHES_DIR}/, nor data_batch_1..5 + test_batch")
            raise DatasetError(f"CIFAR-10 not found at {p} ({origin}): it {what}; {_HOW_TO_FIX}")
        return found
    tried = _default_candidates()
    for p in tried:
        found = _resolve(p)
        if found is not None:
            return found
    raise DatasetError(
        f"CIFAR-10 not found: ${ENV_VAR} is not set and none of these holds {NPZ_NAME} or "
        f"{BATCHES_DIR}: {', '.join(str(p) for p in tried)}; {_HOW_TO_FIX}"
    )


def validate_split(x: np.ndarray, y: np.ndarray, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Check one split and return ``(x uint8 (N, 32, 32, 3), y int64 (N,))`` with labels in 0..9."""
    x = np.asarray(x)
    y = np.asarray(y)
    if x.dtype != np.uint8:
        raise DTypeError(f"CIFAR-10 x_{split}: expected uint8 pixels 0..255, got {x.dtype}; "
                         f"store images as uint8 (e.g. (x * 255).round().astype(np.uint8))")
    if x.ndim != 4 or x.shape[1:] != (32, 32, 3):
        raise ShapeError(f"CIFAR-10 x_{split}: expected shape (N, 32, 32, 3) NHWC, got {x.shape}; "
                         f"an NCHW array converts with x.transpose(0, 2, 3, 1)")
    if not np.issubdtype(y.dtype, np.integer):
        raise DTypeError(f"CIFAR-10 y_{split}: expected integer labels, got {y.dtype}")
    y = y.reshape(-1) if y.ndim == 2 and y.shape[1] == 1 else y
    if y.ndim != 1 or y.shape[0] != x.shape[0]:
        raise ShapeError(f"CIFAR-10 y_{split}: expected shape ({x.shape[0]},) to match x_{split}, "
                         f"got {y.shape}")
    if x.shape[0] == 0:
        raise ShapeError(f"CIFAR-10 {split} split is empty (0 images)")
    lo, hi = int(y.min()), int(y.max())
    if lo < 0 or hi > 9:
        raise DatasetError(f"CIFAR-10 y_{split}: expected labels in 0..9, found values in "
                           f"[{lo}, {hi}]; this is not a 10-class CIFAR-10 file")
    return np.ascontiguousarray(x), y.astype(np.int64)


def _load_npz(path: Path) -> tuple[np.ndarray, ...]:
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise DatasetError(f"{path}: expected a numpy .npz archive ({NPZ_NAME}), could not read "
                           f"it ({e}); re-download it or point {ENV_VAR} elsewhere") from e
    with archive:
        keys = ("x_train", "y_train", "x_test", "y_test")
        missing = [k for k in keys if k not in archive.files]
        if missing:
            raise DatasetError(f"{path}: expected keys {list(keys)}, missing {missing} "
                               f"(found {archive.files})")
        return tuple(archive[k] for k in keys)


class _BatchUnpickler(pickle.Unpickler):
    """Unpickler that can build numpy arrays and nothing else.

    The official python batches are pickles of ``{b"data": uint8 (10000, 3072), b"labels": [...]}``.
    Unpickling them is the standard way to read that layout; they are data, not model files.
    Restricting the globals means a tampered file cannot run code: only the few callables numpy
    arrays need are resolvable.
    """

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
        ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str):  # noqa: D401 - pickle hook
        if (module, name) not in self._ALLOWED:
            raise DatasetError(f"CIFAR-10 batch file refers to {module}.{name}; expected only "
                               f"numpy arrays, lists and bytes; this is not an official batch file")
        if module.startswith("numpy.core."):  # files pickled by numpy 1.x; numpy 2 renamed it
            try:
                return super().find_class("numpy._core." + module[len("numpy.core."):], name)
            except (ImportError, AttributeError):
                pass
        return super().find_class(module, name)


def _read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    if not path.is_file():
        raise DatasetError(f"{path.parent}: expected the official batch file {path.name}, it is "
                           f"missing; re-extract cifar-10-python.tar.gz")
    with open(path, "rb") as f:
        try:
            # encoding="bytes": the official batches were written by Python 2 (keys are bytes).
            d = _BatchUnpickler(f, encoding="bytes").load()
        except DatasetError:
            raise
        except Exception as e:
            raise DatasetError(f"{path}: could not read it as a CIFAR-10 python batch ({e})") from e
    if not isinstance(d, dict):
        raise DatasetError(f"{path}: expected a dict with 'data' and 'labels', got {type(d).__name__}")
    d = {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in d.items()}
    if "data" not in d or "labels" not in d:
        raise DatasetError(f"{path}: expected keys 'data' and 'labels', found {sorted(d)}")
    data = np.asarray(d["data"])
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise ShapeError(f"{path}: expected 'data' of shape (N, 3072), got {data.shape}")
    # Rows are 1024 red, 1024 green, 1024 blue values, each plane row-major: (N, C, H, W) -> NHWC.
    x = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return x, np.asarray(d["labels"])


def _load_batches(folder: Path) -> tuple[np.ndarray, ...]:
    parts = [_read_batch(folder / name) for name in _TRAIN_BATCHES]
    x_test, y_test = _read_batch(folder / _TEST_BATCH)
    x_train = np.concatenate([p[0] for p in parts])
    y_train = np.concatenate([p[1] for p in parts])
    return x_train, y_train, x_test, y_test


def load_cifar10(path: str | os.PathLike | None = None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Load CIFAR-10 as ``(x_train, y_train, x_test, y_test)``.

    Images are ``uint8 (N, 32, 32, 3)`` NHWC RGB 0..255 (C-contiguous), labels ``int64 (N,)`` in
    0..9 (class names in ``CIFAR10_CLASSES``). See the module docstring for the accepted
    layouts and the search order (``find_cifar10``). Raises DatasetError / ShapeError /
    DTypeError with what was expected and found.
    """
    where = find_cifar10(path)
    arrays = _load_batches(where) if where.is_dir() else _load_npz(where)
    x_train, y_train = validate_split(arrays[0], arrays[1], "train")
    x_test, y_test = validate_split(arrays[2], arrays[3], "test")
    return x_train, y_train, x_test, y_test
