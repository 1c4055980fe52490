"""IDX reader: every element type and rank round-trips through a writer built from the spec,
gzip and the dotted mirror names are accepted, damaged files raise DatasetError."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from onebit.data.idx import load_fashion_mnist, load_idx_dataset, load_mnist, read_idx
from onebit.errors import DatasetError, ShapeError

CODES = {np.uint8: 0x08, np.int8: 0x09, np.int16: 0x0B, np.int32: 0x0C, np.float32: 0x0D,
         np.float64: 0x0E}


def idx_bytes(a: np.ndarray) -> bytes:
    """Writer from the spec: 00 00 type ndim, big-endian uint32 dims, big-endian values."""
    header = bytes([0, 0, CODES[a.dtype.type], a.ndim]) + np.asarray(a.shape, ">u4").tobytes()
    return header + a.astype(a.dtype.newbyteorder(">")).tobytes()


@pytest.mark.parametrize("dtype", list(CODES))
@pytest.mark.parametrize("shape", [(0,), (1,), (7,), (3, 5), (2, 28, 28), (2, 1, 3, 4)])
def test_roundtrip(tmp_path, rng, dtype, shape):
    a = (rng.standard_normal(shape) * 100).astype(dtype)
    f = tmp_path / "a.idx"
    f.write_bytes(idx_bytes(a))
    got = read_idx(f)
    assert got.shape == shape and got.dtype == np.dtype(dtype)   # native byte order
    np.testing.assert_array_equal(got, a)
    g = tmp_path / "a.idx.gz"
    g.write_bytes(gzip.compress(idx_bytes(a)))
    np.testing.assert_array_equal(read_idx(g), a)


def test_known_bytes(tmp_path):
    f = tmp_path / "b"
    f.write_bytes(bytes([0, 0, 0x0B, 1, 0, 0, 0, 2, 0x01, 0x02, 0xFF, 0xFE]))
    assert read_idx(f).tolist() == [0x0102, -2]


@pytest.mark.parametrize("data, match", [
    (b"\x00\x00\x07\x01\x00\x00\x00\x01\x05", "IDX magic"),
    (b"\x01\x00\x08\x01", "IDX magic"),
    (b"\x00\x00\x08\x02\x00\x00", "truncated IDX header"),
    (bytes([0, 0, 8, 1, 0, 0, 0, 3, 1, 2]), r"shape \(3,\).*has 10"),
    (bytes([0, 0, 8, 1, 0, 0, 0, 1, 1, 2]), r"shape \(1,\).*has 10"),
    (b"\x1f\x8b\x08not gzip", "could not read"),
])
def test_damaged_files(tmp_path, data, match):
    f = tmp_path / "bad"
    f.write_bytes(data)
    with pytest.raises(DatasetError, match=match):
        read_idx(f)


def write_dataset(folder, rng, n_train=12, n_test=5, gz=False, dotted=False):
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {"x_train": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
              "y_train": rng.integers(0, 10, n_train).astype(np.uint8),
              "x_test": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
              "y_test": rng.integers(0, 10, n_test).astype(np.uint8)}
    names = {"x_train": "train-images-idx3-ubyte", "y_train": "train-labels-idx1-ubyte",
             "x_test": "t10k-images-idx3-ubyte", "y_test": "t10k-labels-idx1-ubyte"}
    for k, a in arrays.items():
        name = names[k].replace("-idx", ".idx") if dotted else names[k]
        data = idx_bytes(a)
        (folder / (name + (".gz" if gz else ""))).write_bytes(gzip.compress(data) if gz else data)
    return arrays


@pytest.mark.parametrize("gz, dotted", [(False, False), (True, False), (False, True), (True, True)])
def test_dataset_folder(tmp_path, rng, gz, dotted):
    arrays = write_dataset(tmp_path / "m", rng, gz=gz, dotted=dotted)
    x_train, y_train, x_test, y_test = load_idx_dataset(tmp_path / "m")
    assert x_train.shape == (12, 28, 28, 1) and x_test.shape == (5, 28, 28, 1)
    np.testing.assert_array_equal(x_train[..., 0], arrays["x_train"])
    np.testing.assert_array_equal(y_test, arrays["y_test"])
    assert y_train.dtype == np.int64 and x_train.flags.c_contiguous


def test_dataset_checks(tmp_path, rng):
    arrays = write_dataset(tmp_path / "m", rng)
    (tmp_path / "m" / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(arrays["y_test"][:4]))
    with pytest.raises(ShapeError, match=r"y_test: expected \(5,\)"):
        load_idx_dataset(tmp_path / "m")
    (tmp_path / "m" / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(arrays["y_test"] + 10))
    with pytest.raises(DatasetError, match="0..9"):
        load_idx_dataset(tmp_path / "m")
    (tmp_path / "m" / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DatasetError, match="t10k-labels-idx1-ubyte or"):
        load_idx_dataset(tmp_path / "m")
    with pytest.raises(DatasetError, match="not a folder"):
        load_idx_dataset(tmp_path / "none")


def test_loaders_use_env_vars(tmp_path, rng, monkeypatch):
    arrays = write_dataset(tmp_path / "fm", rng, gz=True)
    monkeypatch.setenv("ONEBIT_FASHION_MNIST", str(tmp_path / "fm"))
    monkeypatch.setenv("ONEBIT_MNIST", str(tmp_path / "fm"))
    for load in (load_fashion_mnist, load_mnist):
        np.testing.assert_array_equal(load()[1], arrays["y_train"])
    np.testing.assert_array_equal(load_mnist(tmp_path / "fm")[3], arrays["y_test"])
