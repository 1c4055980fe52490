"""Bop, the binary optimizer (Helwegen et al. 2019), and CaseOptimizer to pair it with Adam."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

from onebit.errors import OnebitError

__all__ = ["Bop", "CaseOptimizer"]


class Bop(torch.optim.Optimizer):
    r"""Binary optimizer: flips the sign of binary weights when their gradient momentum agrees.

    Helwegen et al. 2019, "Latent Weights Do Not Exist: Rethinking Binarized Neural Network
    Optimization" (NeurIPS), algorithm 1. There are no latent weights: each weight is the binary
    value itself (+1 or -1) and the optimizer keeps an exponential moving average of its gradient:

        m_t = (1 - gamma) * m_{t-1} + gamma * g_t            (m_0 = 0)
        w_t = -w_{t-1}  if |m_t| > threshold and sign(m_t) == sign(w_{t-1})
              w_{t-1}   otherwise

    The two conditions together read ``sign(w_{t-1}) * m_t > threshold`` (threshold >= 0). A
    positive gradient on a positive weight says "make it smaller", the only move a binary weight
    has is to flip; the threshold ``tau`` sets how strong and consistent that signal must be, the
    adaptivity rate ``gamma`` how long it is remembered. The comparison is strict: ``|m| ==
    threshold`` does not flip.

    Every step writes ``w = sign(w)`` (``+1`` for ``w >= 0``, the project's sign convention), so
    parameters that start as arbitrary floats become exactly +-1 after the first step and stay
    there. Parameters whose ``.grad`` is ``None`` are left untouched.

    Use Bop only for the kernels of binary layers (``kernel_precision == 1``; see
    :func:`onebit.optim.quantized_kernels`), with the kernel quantizer's gradient passing at
    ``|w| = 1`` (``ste_sign``'s clip is inclusive) and no ``kernel_clip`` narrower than 1. All
    other parameters (biases, BatchNorm, float layers) go to a float optimizer; the usual pairing
    (Larq's ``CaseOptimizer(Bop, Adam)``) is::

        binary = [p for _, p in onebit.optim.quantized_kernels(model, max_precision=1.0)]
        ids = {id(p) for p in binary}
        rest = [p for p in model.parameters() if id(p) not in ids]
        opt = onebit.optim.CaseOptimizer(onebit.optim.Bop(binary),
                                         torch.optim.Adam(rest, lr=1e-3))

    Args:
        params: binary parameters (tensors or param-group dicts, as for any torch optimizer).
        threshold: tau >= 0. Default 1e-8 (Helwegen et al.; Larq's default).
        gamma: adaptivity rate in (0, 1]. Default 1e-4 (Helwegen et al.; Larq's default). Schedule
            it by writing ``group["gamma"]`` between steps (torch LR schedulers only touch
            ``"lr"``).
        name: a label for logs; stored as ``self.name``.

    State per parameter: ``"momentum"`` (m_t, same shape as the weight), saved by
    ``state_dict()``.
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        threshold: float = 1e-8,
        gamma: float = 1e-4,
        name: str = "Bop",
    ) -> None:
        if not threshold >= 0.0:
            raise ValueError(f"Bop threshold must be >= 0, got {threshold}")
        if not 0.0 < gamma <= 1.0:
            raise ValueError(f"Bop gamma must be in (0, 1], got {gamma}; the paper uses 1e-4")
        super().__init__(params, {"threshold": float(threshold), "gamma": float(gamma)})
        self.name = name

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor | None:
        """One Bop update of every parameter that has a gradient (formula in the class doc)."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            gamma, threshold = group["gamma"], group["threshold"]
            for w in group["params"]:
                if w.grad is None:
                    continue
                if w.grad.is_sparse:
                    raise OnebitError(
                        "Bop does not support sparse gradients; binary kernels of "
                        "QuantConv2d/QuantLinear have dense gradients, pass only those"
                    )
                state = self.state[w]
                if "momentum" not in state:
                    state["momentum"] = torch.zeros_like(w, memory_format=torch.preserve_format)
                m = state["momentum"]
                m.mul_(1.0 - gamma).add_(w.grad, alpha=gamma)
                sign = (w >= 0).to(w.dtype) * 2 - 1  # +1 for w >= 0, -1 for w < 0
                flip = sign * m > threshold
                w.copy_(torch.where(flip, -sign, sign))
        return loss


class CaseOptimizer:
    """Several optimizers over disjoint parameter sets, stepped together (Larq's CaseOptimizer).

    ``CaseOptimizer(Bop(binary_kernels), torch.optim.Adam(other_params))`` behaves like one
    optimizer for a training loop: ``step``, ``zero_grad``, ``state_dict``/``load_state_dict``,
    and ``param_groups`` (the inner optimizers' group dicts, live, concatenated). It is not a
    ``torch.optim.Optimizer``: attach LR schedulers to the inner optimizer they are meant for
    (``opt.optimizers[1]``). A parameter given to two inner optimizers raises ``OnebitError``.
    """

    def __init__(self, *optimizers: torch.optim.Optimizer) -> None:
        if not optimizers:
            raise OnebitError("CaseOptimizer needs at least one optimizer, got none")
        seen: dict[int, int] = {}
        for i, opt in enumerate(optimizers):
            if not isinstance(opt, torch.optim.Optimizer):
                raise TypeError(
                    "CaseOptimizer expects torch.optim.Optimizer instances, got "
                    f"{type(opt).__name__} at position {i}"
                )
            for group in opt.param_groups:
                for p in group["params"]:
                    if id(p) in seen:
                        raise OnebitError(
                            f"a parameter of shape {tuple(p.shape)} is in optimizer {seen[id(p)]} "
                            f"and optimizer {i}; split the parameters so each is updated by one "
                            "optimizer"
                        )
                    seen[id(p)] = i
        self.optimizers = list(optimizers)

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        """The param groups of all inner optimizers, in order (the same dicts, not copies)."""
        return [g for opt in self.optimizers for g in opt.param_groups]

    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor | None:
        """Evaluate ``closure`` (if any) once, then step every inner optimizer."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for opt in self.optimizers:
            opt.step()
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        """``zero_grad`` on every inner optimizer."""
        for opt in self.optimizers:
            opt.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict[str, Any]:
        """``{"optimizers": [inner.state_dict(), ...]}`` in construction order."""
        return {"optimizers": [opt.state_dict() for opt in self.optimizers]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a dict written by :meth:`state_dict` of a CaseOptimizer built the same way."""
        states = state_dict.get("optimizers") if isinstance(state_dict, dict) else None
        if not isinstance(states, list) or len(states) != len(self.optimizers):
            found = len(states) if isinstance(states, list) else type(states).__name__
            raise OnebitError(
                f"CaseOptimizer.load_state_dict expected {{'optimizers': [...]}} with "
                f"{len(self.optimizers)} entries, found {found}; build the CaseOptimizer with the "
                "same optimizers, in the same order, as the one that was saved"
            )
        for opt, state in zip(self.optimizers, states):
            opt.load_state_dict(state)

    def __repr__(self) -> str:
        inner = ", ".join(type(o).__name__ for o in self.optimizers)
        return f"CaseOptimizer({inner})"
