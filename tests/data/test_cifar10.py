"""load_cifar10: every accepted layout gives the same arrays, the search order holds, bad files
raise typed errors that say what to do, and the bundled copy (when present) is the one the
README describes."""

from __future__ import annotations

import hashlib
import pickle

import numpy as np
import pytest

from onebit.data import cifar10 as c10
from onebit.data import load_cifar10
from onebit.errors import DatasetError, DTypeError, ShapeError


@pytest.fixture
def arrays(rng):
    """Synthetic CIFAR-shaped splits: 30 train images (6 per official batch), 12 test images."""
    x_train = rng.integers(0, 256, (30, 32, 32, 3), dtype=np.uint8)
    x_test = rng.integers(0, 256, (12, 32, 32, 3), dtype=np.uint8)
    y_train = rng.integers(0, 10, 30).astype(np.uint8)
    y_test = np.arange(12, dtype=np.uint8) % 10
    return x_train, y_train, x_test, y_test


def write_npz(path, arrays, **override):
    keys = dict(zip(("x_train", "y_train", "x_test", "y_test"), arrays))
    keys.update(override)
    np.savez(path, **keys)
    return path


def write_batches(folder, arrays, protocol=2):
    """The official layout: pickled dicts with bytes keys, data (N, 3072) as R, G, B planes."""
    folder.mkdir(parents=True)
    x_train, y_train, x_test, y_test = arrays

    def dump(name, x, y):
        rows = x.transpose(0, 3, 1, 2).reshape(len(x), 3072)   # NHWC -> N, C*H*W
        with open(folder / name, "wb") as f:
            pickle.dump({b"batch_label": name.encode(), b"labels": [int(v) for v in y],
                         b"data": rows, b"filenames": [b"x.png"] * len(x)}, f, protocol=protocol)

    for i in range(5):
        dump(f"data_batch_{i + 1}", x_train[6 * i:6 * i + 6], y_train[6 * i:6 * i + 6])
    dump("test_batch", x_test, y_test)
    return folder


def assert_same(loaded, arrays):
    for got, want in zip(loaded, arrays):
        np.testing.assert_array_equal(got, want)
    x_train, y_train, x_test, y_test = loaded
    assert x_train.dtype == np.uint8 and x_train.flags.c_contiguous
    assert y_train.dtype == np.int64 and y_test.dtype == np.int64


def test_npz_file_and_folder(tmp_path, arrays):
    f = write_npz(tmp_path / "cifar10.npz", arrays)
    assert_same(load_cifar10(f), arrays)
    assert_same(load_cifar10(tmp_path), arrays)
    assert_same(load_cifar10(str(tmp_path)), arrays)


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_python_batches_folder_and_parent(tmp_path, arrays, protocol):
    folder = write_batches(tmp_path / "cifar-10-batches-py", arrays, protocol)
    assert_same(load_cifar10(folder), arrays)
    assert_same(load_cifar10(tmp_path), arrays)            # the folder the archive was extracted in
    assert_same(load_cifar10(folder / "test_batch"), arrays)


def test_batch_rows_are_channel_planes(tmp_path):
    """Row layout of the official batches: value at (c, h, w) sits at column c*1024 + h*32 + w."""
    folder = tmp_path / "b"
    folder.mkdir()
    data = (np.arange(3072) % 251).astype(np.uint8)[None].repeat(2, 0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        with open(folder / name, "wb") as f:
            pickle.dump({b"data": data, b"labels": [3, 7]}, f, protocol=2)
    x_train, y_train, x_test, y_test = load_cifar10(folder)
    assert x_train.shape == (10, 32, 32, 3) and x_test.shape == (2, 32, 32, 3)
    for c, h, w in [(0, 0, 0), (1, 0, 0), (2, 31, 31), (1, 5, 17), (0, 31, 0)]:
        assert x_test[1, h, w, c] == data[0, c * 1024 + h * 32 + w]
    assert y_train.tolist() == [3, 7] * 5


def test_tampered_batch_cannot_run_code(tmp_path, arrays):
    folder = write_batches(tmp_path / "cifar-10-batches-py", arrays)

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    with open(folder / "test_batch", "wb") as f:
        pickle.dump({b"data": Evil(), b"labels": []}, f, protocol=2)
    with pytest.raises(DatasetError, match=r"builtin\w*\.print"):
        load_cifar10(folder)


def test_missing_batch_file(tmp_path, arrays):
    folder = write_batches(tmp_path / "cifar-10-batches-py", arrays)
    (folder / "data_batch_3").unlink()
    with pytest.raises(DatasetError, match="data_batch_3"):
        load_cifar10(folder)


def test_env_var_and_explicit_path_order(tmp_path, arrays, monkeypatch):
    env_file = write_npz(tmp_path / "env.npz", arrays)
    other = [a[:4] for a in arrays]
    arg_file = write_npz(tmp_path / "arg.npz", other)
    monkeypatch.setenv("ONEBIT_CIFAR10", str(env_file))
    assert_same(load_cifar10(), arrays)
    assert_same(load_cifar10(arg_file), other)             # an explicit path wins over the env var
    monkeypatch.setenv("ONEBIT_CIFAR10", str(tmp_path / "nowhere"))
    with pytest.raises(DatasetError, match=r"nowhere.*ONEBIT_CIFAR10.*does not exist"):
        load_cifar10()


def test_default_search(tmp_path, arrays, monkeypatch):
    monkeypatch.delenv("ONEBIT_CIFAR10", raising=False)
    empty, full = tmp_path / "a", tmp_path / "b"
    empty.mkdir()
    full.mkdir()
    write_npz(full / "cifar10.npz", arrays)
    monkeypatch.setattr(c10, "_default_candidates", lambda: [empty, full])
    assert c10.find_cifar10() == full / "cifar10.npz"
    monkeypatch.setattr(c10, "_default_candidates", lambda: [empty, tmp_path / "c"])
    with pytest.raises(DatasetError) as e:
        load_cifar10()
    msg = str(e.value)
    assert str(empty) in msg and str(tmp_path / "c") in msg
    assert "ONEBIT_CIFAR10" in msg and "--data" in msg


def test_default_candidates_are_next_to_repo():
    cands = c10._default_candidates()
    repo = c10._repo_root()
    assert (repo / "src" / "onebit" / "data" / "cifar10.py").is_file()
    assert cands[0] == (repo.parent / "shared" / "data" / "cifar10").resolve()


def test_folder_without_data(tmp_path):
    with pytest.raises(DatasetError, match="holds neither"):
        load_cifar10(tmp_path)


@pytest.mark.parametrize("key, value, error, match", [
    ("x_train", lambda a: a[0].astype(np.float32), DTypeError, "uint8"),
    ("x_train", lambda a: a[0].transpose(0, 3, 1, 2).copy(), ShapeError, r"\(N, 32, 32, 3\)"),
    ("x_test", lambda a: a[2][:, :31], ShapeError, r"\(N, 32, 32, 3\)"),
    ("y_train", lambda a: a[1][:-1], ShapeError, r"\(30,\)"),
    ("y_test", lambda a: a[3].astype(np.float32), DTypeError, "integer"),
    ("y_test", lambda a: np.where(a[3] == 9, 10, a[3]), DatasetError, r"0\.\.9.*\[0, 10\]"),
    ("x_test", lambda a: a[2][:0], ShapeError, "x_test|empty"),
])
def test_validation_errors(tmp_path, arrays, key, value, error, match):
    f = tmp_path / "bad.npz"
    override = {key: value(arrays)}
    if key == "x_test" and override[key].shape[0] == 0:
        override["y_test"] = arrays[3][:0]
    write_npz(f, arrays, **override)
    with pytest.raises(error, match=match):
        load_cifar10(f)


def test_label_column_vector_is_accepted(tmp_path, arrays):
    f = write_npz(tmp_path / "c.npz", arrays, y_train=arrays[1][:, None])
    assert_same(load_cifar10(f), arrays)


def test_missing_key_and_corrupt_file(tmp_path, arrays):
    f = tmp_path / "k.npz"
    np.savez(f, x_train=arrays[0], y_train=arrays[1], x_test=arrays[2])
    with pytest.raises(DatasetError, match=r"missing \['y_test'\]"):
        load_cifar10(f)
    g = tmp_path / "junk.npz"
    g.write_bytes(b"not a zip file at all")
    with pytest.raises(DatasetError, match="could not read"):
        load_cifar10(g)


# --- the bundled copy described in shared/data/cifar10/README.md -----------------------------

@pytest.fixture(scope="module")
def bundled():
    try:
        path = c10.find_cifar10()
    except DatasetError as e:
        pytest.skip(f"bundled CIFAR-10 not available: {e}")
    return load_cifar10(path)


def test_bundled_copy_matches_readme(bundled):
    x_train, y_train, x_test, y_test = bundled
    assert x_train.shape == (50000, 32, 32, 3) and x_test.shape == (10000, 32, 32, 3)
    assert np.bincount(y_train).tolist() == [5000] * 10
    assert np.bincount(y_test).tolist() == [1000] * 10
    # sha256 of the raw bytes as stored (uint8), from the README's integrity section.
    assert hashlib.sha256(y_train.astype(np.uint8).tobytes()).hexdigest() == \
        "a29f2a5ffc141bb1c9e1af453e9a5ef8c316b2f675f8cea1d849d220d33a14fb"
    assert hashlib.sha256(x_test.tobytes()).hexdigest() == \
        "5a6aa8185204d80b65d3dfb540696dadd5f10d185ded226a96665d3e0fc6259f"
    mean = x_test.reshape(-1, 3).mean(0) / 255
    np.testing.assert_allclose(mean, [0.4941, 0.4851, 0.4504], atol=2e-4)
