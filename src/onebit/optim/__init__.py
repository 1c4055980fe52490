"""Optimisation helpers for binary and ternary networks.

- :class:`Bop` (Helwegen et al. 2019): the binary optimizer that flips +-1 weights on momentum.
- :class:`CaseOptimizer`: step Bop (binary kernels) and a float optimizer (the rest) together.
- :func:`param_groups`: AdamW groups with BNext's weight decays (1e-3 float, 1e-8 binary).
- :func:`quantized_kernels`: the latent kernels of layers with ``kernel_precision <= p``.
- :class:`FlipTracker`: the fraction of binary weights whose sign flipped between two steps.
"""

from __future__ import annotations

from onebit.optim.bop import Bop, CaseOptimizer
from onebit.optim.flips import FlipStats, FlipTracker
from onebit.optim.param_groups import param_groups, quantized_kernels

__all__ = ["Bop", "CaseOptimizer", "FlipStats", "FlipTracker", "param_groups", "quantized_kernels"]
