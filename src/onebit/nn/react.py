"""ReActNet's learnable shifts: ``LearnableBias`` (RSign's move) and ``RPReLU``.

Both act per channel on axis 1, so they take ``(N, C)`` and ``(N, C, H, W)`` tensors (NCHW).

Paper: Liu et al., "ReActNet: Towards Precise Binary Neural Network with Generalized Activation
Functions" (ECCV 2020), sec. 3.2, eq. (1)-(3).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from onebit.errors import ShapeError

__all__ = ["LearnableBias", "RPReLU"]


def _channel_view(p: Tensor, x: Tensor, who: str) -> Tensor:
    """Reshape a ``(C,)`` parameter to broadcast along axis 1 of ``x`` (``(1, C, 1, 1)``...)."""
    if x.dim() < 2 or x.shape[1] != p.shape[0]:
        raise ShapeError(
            f"{who} expects input (N, {p.shape[0]}, ...) with channels on axis 1, got shape "
            f"{tuple(x.shape)}; check num_channels or permute channels-last input to NCHW."
        )
    return p.view((1, -1) + (1,) * (x.dim() - 2))


class LearnableBias(nn.Module):
    r"""Per-channel learnable shift: ``y[:, c] = x[:, c] + b_c`` (``b`` starts at 0).

    Placed before a sign it makes ReActNet's RSign: ``sign(x + b)`` is ``sign(x - alpha)`` with
    ``alpha = -b`` (eq. 1).
    """

    def __init__(self, num_channels: int):
        super().__init__()
        self.num_channels = int(num_channels)
        self.bias = nn.Parameter(torch.zeros(self.num_channels))

    def forward(self, x: Tensor) -> Tensor:
        return x + _channel_view(self.bias, x, "LearnableBias")

    def extra_repr(self) -> str:
        return f"num_channels={self.num_channels}"


class RPReLU(nn.Module):
    r"""ReActNet RPReLU: a PReLU with learnable shifts before and after, per channel.

    ``y[:, c] = PReLU_c(x[:, c] - gamma_c) + zeta_c`` with
    ``PReLU_c(u) = u if u > 0 else beta_c * u`` (eq. 3). ``gamma = zeta = 0`` and
    ``beta = init`` (0.25, as ``nn.PReLU``) at start.
    """

    def __init__(self, num_channels: int, init: float = 0.25):
        super().__init__()
        self.num_channels = int(num_channels)
        self.shift_in = nn.Parameter(torch.zeros(self.num_channels))  # gamma
        self.slope = nn.Parameter(torch.full((self.num_channels,), float(init)))  # beta
        self.shift_out = nn.Parameter(torch.zeros(self.num_channels))  # zeta

    def forward(self, x: Tensor) -> Tensor:
        u = x - _channel_view(self.shift_in, x, "RPReLU")
        y = torch.where(u > 0, u, _channel_view(self.slope, x, "RPReLU") * u)
        return y + _channel_view(self.shift_out, x, "RPReLU")

    def extra_repr(self) -> str:
        return f"num_channels={self.num_channels}"
