"""Ternary kernels: tq2 packing, quantize_i8, tgemv / tgemm.

Every ISA equals the scalar reference bit-exactly (int32 accumulators, and the float outputs,
which both paths compute as ``float(acc) * (w_scale / x_scale)``), the integer accumulators
equal an int64 numpy matmul, and the float outputs equal the float computation on the
dequantized values within the stated tolerance. Inputs and outputs are guard-page arrays.
"""

from __future__ import annotations

import numpy as np
import pytest

from onebit import kernels
from onebit.errors import DTypeError, ShapeError
from tests.guard import guarded_copy, guarded_empty

EDGE_K = [1, 3, 4, 5, 31, 32, 33, 63, 64, 65, 127, 128, 129, 255, 256, 257]
EDGE_N = [1, 7, 8, 9, 33]
EDGE_M = [1, 2, 3, 7, 8, 9, 33]


def random_ternary(rng, n: int, k: int) -> np.ndarray:
    return rng.integers(-1, 2, size=(n, k), dtype=np.int8)


def numpy_pack(t: np.ndarray) -> np.ndarray:
    """Independent oracle of formats.h: weight k sits in byte 32*(k//128) + k%32, bits 2*((k%128)//32)."""
    n, k = t.shape
    row_bytes = 32 * (-(-k // 128))
    out = np.zeros((n, row_bytes), dtype=np.uint8)
    for kk in range(-(-k // 128) * 128):
        q = (t[:, kk].astype(np.uint8) + 1) if kk < k else np.ones(n, np.uint8)  # tail: t = 0
        out[:, 32 * (kk // 128) + kk % 32] |= q << (2 * ((kk % 128) // 32))
    return out


def numpy_quantize(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """BitNet per-token absmax quantization in float32 numpy (formats.h)."""
    amax = np.abs(x).max(axis=-1) if x.shape[-1] else np.zeros(x.shape[:-1], np.float32)
    scale = np.float32(127) / np.maximum(amax, np.float32(1e-5))
    q = np.clip(np.rint(x * scale[..., None]), -127, 127).astype(np.int8)
    return q, scale.astype(np.float32)


def guarded_out(shape, dtype):
    out = guarded_empty(shape, dtype)
    out[...] = 0x5A if np.dtype(dtype).kind in "iu" else np.nan  # sentinel: every element must be written
    return out


# ---- packing ---------------------------------------------------------------------------------


@pytest.mark.parametrize("k", EDGE_K + [1000])
def test_pack_matches_format_and_round_trips(rng, k):
    t = random_ternary(rng, 9, k)
    packed, scale = kernels.pack_ternary(t, scale=0.25)
    assert packed.dtype == np.uint8 and packed.shape == (9, kernels.ternary_row_bytes(k)) and scale == 0.25
    np.testing.assert_array_equal(packed, numpy_pack(t))
    np.testing.assert_array_equal(kernels.unpack_ternary(packed, k), t)
    assert 8 * packed.nbytes / t.size <= 2.0 + 8 * 32 * 9 / t.size  # 2 bits/weight + the padded tail


def test_pack_float_uses_bitnet_absmean_quantizer(rng):
    torch = pytest.importorskip("torch")
    w = rng.standard_normal((48, 200)).astype(np.float32) * 0.02
    packed, gamma = kernels.pack_ternary(w)
    # bitnet b1.58 eq. 1-3: gamma = mean|W|, W~ = RoundClip(W / (gamma + eps), -1, 1)
    wt = torch.from_numpy(w)
    g = wt.abs().mean().clamp(min=1e-5)
    t = (wt / g).round().clamp(-1, 1).to(torch.int8).numpy()
    assert gamma == pytest.approx(float(g), rel=1e-6)
    np.testing.assert_array_equal(kernels.unpack_ternary(packed, 200), t)
    assert set(np.unique(t)) == {-1, 0, 1}


# ---- quantize_i8 -------------------------------------------------------------------------------


@pytest.mark.parametrize("k", EDGE_K + [1000])
def test_quantize_i8_matches_formula_and_ref(isa, rng, k):
    x = rng.standard_normal((7, k)).astype(np.float32) * rng.uniform(0.01, 100, size=(7, 1)).astype(np.float32)
    x[3] = 0.0  # all-zero row: scale = 127 / 1e-5, q = 0
    x = guarded_copy(x)
    q_out, s_out = guarded_out((7, k), np.int8), guarded_out((7,), np.float32)
    q, s = kernels.quantize_i8(x, out=(q_out, s_out))
    assert q is q_out and s is s_out
    q_np, s_np = numpy_quantize(x)
    np.testing.assert_array_equal(s, s_np)
    np.testing.assert_array_equal(q, q_np)
    assert np.abs(q).max() == 127  # the row maximum maps to 127
    with kernels.use_isa("ref"):
        q_ref, s_ref = kernels.quantize_i8(x)
    np.testing.assert_array_equal(q, q_ref)
    np.testing.assert_array_equal(s, s_ref)


def test_quantize_i8_rounds_half_to_even_like_torch(isa):
    torch = pytest.importorskip("torch")
    # max 127 -> scale 1.0 exactly, so x * scale are the given halves
    x = np.array([[127.0, 0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 3.49, -126.5]], dtype=np.float32)
    q, s = kernels.quantize_i8(x)
    assert s[0] == 1.0
    xt = torch.from_numpy(x)
    scale = 127.0 / xt.abs().max(dim=-1, keepdim=True).values.clamp(min=1e-5)
    np.testing.assert_array_equal(q, (xt * scale).round().clamp(-128, 127).to(torch.int8).numpy())
    np.testing.assert_array_equal(q[0], [127, 0, 2, 2, 0, -2, -2, 3, -126])


def test_quantize_i8_nan_and_inf_match_ref(isa, rng):
    """Non-finite inputs follow the ref's std::max / nearbyint semantics in every ISA."""
    x = rng.standard_normal((6, 53)).astype(np.float32)
    x[0, 0] = np.nan  # first lane: a NaN must not poison the running max
    x[1, 52] = np.nan  # masked tail lane
    x[2, 17] = np.inf  # scale 0: finite values -> 0, inf * 0 = NaN -> -127
    x[3, 5] = -np.inf
    x[4, :] = np.nan
    q, s = kernels.quantize_i8(x)
    with kernels.use_isa("ref"):
        q_ref, s_ref = kernels.quantize_i8(x)
    np.testing.assert_array_equal(s, s_ref)
    np.testing.assert_array_equal(q, q_ref)


def test_quantize_i8_leading_axes_and_threads(rng):
    x = rng.standard_normal((3, 5, 70)).astype(np.float32)
    q, s = kernels.quantize_i8(x)
    assert q.shape == (3, 5, 70) and s.shape == (3, 5)
    q2, s2 = kernels.quantize_i8(x.reshape(15, 70), num_threads=3)
    np.testing.assert_array_equal(q.reshape(15, 70), q2)
    np.testing.assert_array_equal(s.reshape(15), s2)


# ---- tgemv / tgemm -------------------------------------------------------------------------------


def check_matmul(op, rng, m, n, k, num_threads=1, x_range=(-127, 128)):
    t = random_ternary(rng, n, k)
    w_scale = float(rng.uniform(0.01, 1.0))
    packed = guarded_copy(kernels.pack_ternary(t, scale=w_scale)[0])
    x_q = guarded_copy(rng.integers(*x_range, size=(m, k), dtype=np.int8))
    x_scale = guarded_copy(rng.uniform(0.5, 200.0, size=m).astype(np.float32))
    acc = op(packed, w_scale, x_q, x_scale, out=guarded_out((m, n), np.int32), out_dtype=np.int32,
             num_threads=num_threads)
    y = op(packed, w_scale, x_q, x_scale, out=guarded_out((m, n), np.float32), num_threads=num_threads)
    # integers: exact
    np.testing.assert_array_equal(acc, x_q.astype(np.int64) @ t.T.astype(np.int64))
    # float: float(acc) * (w_scale / x_scale) in float32 (the kernels' formula) exactly ...
    mult = np.float32(w_scale) / x_scale
    np.testing.assert_array_equal(y, acc.astype(np.float32) * mult[:, None])
    # ... and the float computation on dequantized values within 1e-6 relative (3 float32 roundings)
    y64 = (x_q / x_scale.astype(np.float64)[:, None]) @ (t.astype(np.float64) * np.float32(w_scale)).T
    np.testing.assert_allclose(y, y64, rtol=1e-6, atol=1e-6 * max(1.0, np.abs(y64).max()))
    # bit-exact against the scalar reference
    with kernels.use_isa("ref"):
        np.testing.assert_array_equal(acc, op(packed, w_scale, x_q, x_scale, out_dtype=np.int32))
        np.testing.assert_array_equal(y, op(packed, w_scale, x_q, x_scale))
    return t, x_q, x_scale, w_scale, y


@pytest.mark.parametrize("k", EDGE_K)
@pytest.mark.parametrize("m", EDGE_M)
def test_tgemm_grid(isa, rng, m, k):
    for n in EDGE_N:
        check_matmul(kernels.tgemm, rng, m, n, k)


@pytest.mark.parametrize("k", EDGE_K)
@pytest.mark.parametrize("n", EDGE_N)
def test_tgemv_grid(isa, rng, n, k):
    t, x_q, x_scale, w_scale, y = check_matmul(kernels.tgemv, rng, 1, n, k)
    # the 1-D form (K,) -> (N,)
    y1 = kernels.tgemv(kernels.pack_ternary(t, scale=w_scale)[0], w_scale, x_q[0], x_scale.reshape(()))
    np.testing.assert_array_equal(y1, y[0])


def test_tgemm_tile_edges(isa, rng):
    """M around the 6-row tiles, N around the 64-column panels, K with odd block counts and a
    partial 4-block chunk (637: 5 blocks, 1100: 9 blocks)."""
    for k in (637, 1100):
        for n in (63, 64, 65, 130):
            for m in range(1, 18):
                check_matmul(kernels.tgemm, rng, m, n, k)


@pytest.mark.parametrize("k", [383, 384, 385, 637, 1100])
def test_tgemv_row_group_edges(isa, rng, k):
    """N around the 4-row groups, K with an odd block count (the masked last block) or not."""
    for n in (3, 4, 5, 6, 7, 130):
        check_matmul(kernels.tgemv, rng, 1, n, k)
    check_matmul(kernels.tgemv, rng, 3, 9, k)  # several activation rows


@pytest.mark.parametrize("op", ["tgemv", "tgemm"])
def test_large_k_extremes_are_exact(isa, op):
    """acc = +-127 * K and -128 * K with K = 2^16 + 5 (pre-scaled int32 lanes far from overflow)."""
    k = (1 << 16) + 5
    t = np.ones((3, k), np.int8)
    t[1] = -1
    t[2, 1::2] = 0
    packed, _ = kernels.pack_ternary(t)
    x_q = np.full((3, k), 127, np.int8)
    x_q[1] = -127
    x_q[2] = -128
    m = 1 if op == "tgemv" else 3
    acc = getattr(kernels, op)(packed, 1.0, x_q[:m], np.ones(m, np.float32), out_dtype=np.int32)
    np.testing.assert_array_equal(acc, x_q[:m].astype(np.int64) @ t.T.astype(np.int64))
    assert acc[0, 0] == 127 * k


@pytest.mark.parametrize("num_threads", [1, 2, 3])
@pytest.mark.parametrize("op", ["tgemv", "tgemm"])
def test_threads_give_identical_results(isa, rng, num_threads, op):
    fn = getattr(kernels, op)
    m = 1 if op == "tgemv" else 13
    check_matmul(fn, rng, m, 61, 300, num_threads=num_threads)


@pytest.mark.parametrize("op", ["tgemv", "tgemm"])
def test_extreme_activations_do_not_saturate(isa, rng, op):
    """Full int8 range including -128, K large enough for many int16 flushes and K blocks."""
    k, n, m = 9000, 7, 5 if op == "tgemm" else 2
    fn = getattr(kernels, op)
    t = np.ones((n, k), np.int8)
    t[1] = -1
    t[2, ::2] = 0
    packed, _ = kernels.pack_ternary(t)
    x_q = np.full((m, k), -128, np.int8)
    x_q[-1] = 127
    acc = fn(packed, 1.0, x_q, np.ones(m, np.float32), out_dtype=np.int32)
    np.testing.assert_array_equal(acc, x_q.astype(np.int64) @ t.T.astype(np.int64))
    assert acc[0, 0] == -128 * k
    check_matmul(fn, rng, m, n, 4100, x_range=(-128, 128))


@pytest.mark.parametrize("op", ["tgemv", "tgemm"])
def test_empty_shapes(isa, op):
    fn = getattr(kernels, op)
    packed, _ = kernels.pack_ternary(np.zeros((5, 0), np.int8))
    assert packed.shape == (5, 0)
    y = fn(packed, 1.0, np.zeros((2, 0), np.int8), np.ones(2, np.float32))
    np.testing.assert_array_equal(y, np.zeros((2, 5), np.float32))
    packed, _ = kernels.pack_ternary(np.ones((4, 40), np.int8))
    assert fn(packed, 1.0, np.zeros((0, 40), np.int8), np.ones(0, np.float32)).shape == (0, 4)
    packed, _ = kernels.pack_ternary(np.ones((0, 40), np.int8))
    assert fn(packed, 1.0, np.ones((3, 40), np.int8), np.ones(3, np.float32)).shape == (3, 0)
    q, s = kernels.quantize_i8(np.zeros((0, 7), np.float32))
    assert q.shape == (0, 7) and s.shape == (0,)


def test_ternary_linear_matches_torch_bitlinear(rng):
    torch = pytest.importorskip("torch")
    w = rng.standard_normal((40, 300)).astype(np.float32)
    packed, gamma = kernels.pack_ternary(w)
    for rows in (1, 6):
        x = rng.standard_normal((rows, 300)).astype(np.float32)
        y = kernels.ternary_linear(x, packed, gamma)
        # bitnet: y = (x_q / s) @ (gamma * t).T with per-token s = 127 / max|x|
        xt = torch.from_numpy(x)
        s = 127.0 / xt.abs().max(dim=-1, keepdim=True).values.clamp(min=1e-5)
        x_deq = (xt * s).round().clamp(-128, 127) / s
        t = torch.from_numpy(kernels.unpack_ternary(packed, 300)).float()
        ref = torch.nn.functional.linear(x_deq, t * gamma).numpy()
        np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())


def test_bad_inputs_raise_typed_errors(rng):
    packed, _ = kernels.pack_ternary(random_ternary(rng, 4, 130))
    x_q = np.zeros((2, 130), np.int8)
    s = np.ones(2, np.float32)
    with pytest.raises(ShapeError, match=r"needs packed weights of shape \(N, 64\)"):
        kernels.tgemm(packed[:, :32], 1.0, x_q, s)
    with pytest.raises(ShapeError, match="K=100"):
        kernels.tgemm(packed, 1.0, np.zeros((2, 100), np.int8), s)
    with pytest.raises(DTypeError, match="int8 activations"):
        kernels.tgemv(packed, 1.0, x_q.astype(np.float32), s)
    with pytest.raises(DTypeError, match="uint8"):
        kernels.tgemm(packed.astype(np.int8), 1.0, x_q, s)
    with pytest.raises(ShapeError, match="x_scale must have shape"):
        kernels.tgemm(packed, 1.0, x_q, np.ones(3, np.float32))
    with pytest.raises(ShapeError, match="out must be"):
        kernels.tgemm(packed, 1.0, x_q, s, out=np.zeros((2, 5), np.float32))
    with pytest.raises(DTypeError, match="out_dtype"):
        kernels.tgemm(packed, 1.0, x_q, s, out_dtype=np.float64)
    with pytest.raises(ValueError, match=r"\{-1, 0, 1\}"):
        kernels.pack_ternary(np.full((2, 3), 2, np.int8))
    with pytest.raises(ShapeError, match=r"\(N, K\)"):
        kernels.pack_ternary(np.zeros(5, np.float32))
    with pytest.raises(DTypeError, match="float32"):
        kernels.quantize_i8(np.zeros((2, 3), np.float64))
    with pytest.raises(ValueError, match="num_threads"):
        kernels.tgemm(packed, 1.0, x_q, s, num_threads=0)
