"""Shared fixtures: every kernel test runs once per ISA this CPU supports."""

from __future__ import annotations

import numpy as np
import pytest


def _supported_isas() -> list[str]:
    from onebit import kernels

    return kernels.supported_isas()


@pytest.fixture(params=_supported_isas())
def isa(request):
    """Switch the dispatch table to each supported ISA (ref, avx2, avx512) in turn."""
    from onebit import kernels

    with kernels.use_isa(request.param):
        yield request.param


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
