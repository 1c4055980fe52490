"""Bop's update rule on hand-computed tensors, its state_dict, and CaseOptimizer."""

from __future__ import annotations

import io

import pytest
import torch
from torch import nn

from onebit.errors import OnebitError
from onebit.optim import Bop, CaseOptimizer


def _through_file(state: dict) -> dict:
    """Save and load like a checkpoint (state_dict() returns live tensors, not copies)."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def _step(opt: torch.optim.Optimizer, w: nn.Parameter, grad: list[float]) -> None:
    w.grad = torch.tensor(grad)
    opt.step()


def test_bop_flips_exactly_where_momentum_agrees_and_exceeds_threshold():
    # gamma = 0.5, tau = 0.25: every value below is a dyadic fraction, so the arithmetic is exact.
    w = nn.Parameter(torch.tensor([1.0, 1.0, -1.0, -1.0, 1.0, -1.0, 1.0]))
    opt = Bop([w], threshold=0.25, gamma=0.5)

    # Step 1: m1 = 0.5 * 0 + 0.5 * g1
    #   g1      = [1,    -1,    -1,   1,    0.5,  -0.5,  0.75 ]
    #   m1      = [0.5,  -0.5,  -0.5, 0.5,  0.25, -0.25, 0.375]
    #   sign*m1 = [0.5,  -0.5,   0.5, -0.5, 0.25,  0.25, 0.375]   flip where > 0.25
    #   flips   = [T,     F,     T,    F,   F (== tau), F (== tau), T]
    _step(opt, w, [1.0, -1.0, -1.0, 1.0, 0.5, -0.5, 0.75])
    assert torch.equal(opt.state[w]["momentum"], torch.tensor([0.5, -0.5, -0.5, 0.5, 0.25, -0.25, 0.375]))
    assert torch.equal(w.data, torch.tensor([-1.0, 1.0, 1.0, -1.0, 1.0, -1.0, -1.0]))

    # Step 2: m2 = 0.5 * m1 + 0.5 * g2
    #   g2      = [1,     -1,    -1,    1,     0.5,   -0.5,   0     ]
    #   m2      = [0.75,  -0.75, -0.75, 0.75,  0.375, -0.375, 0.1875]
    #   sign(w1)= [-1,     1,     1,   -1,     1,     -1,    -1     ]
    #   sign*m2 = [-0.75, -0.75, -0.75, -0.75, 0.375,  0.375, -0.1875]
    #   flips   = [F, F, F, F, T, T, F]
    _step(opt, w, [1.0, -1.0, -1.0, 1.0, 0.5, -0.5, 0.0])
    assert torch.equal(
        opt.state[w]["momentum"], torch.tensor([0.75, -0.75, -0.75, 0.75, 0.375, -0.375, 0.1875])
    )
    assert torch.equal(w.data, torch.tensor([-1.0, 1.0, 1.0, -1.0, -1.0, 1.0, -1.0]))


def test_bop_zero_threshold_flips_on_any_agreeing_momentum_but_not_on_zero():
    w = nn.Parameter(torch.tensor([1.0, -1.0, 1.0, -1.0]))
    opt = Bop([w], threshold=0.0, gamma=1.0)  # gamma = 1: m = g
    _step(opt, w, [1e-30, -1e-30, 0.0, 0.0])
    assert torch.equal(w.data, torch.tensor([-1.0, 1.0, 1.0, -1.0]))


def test_bop_binarizes_latent_values_and_skips_params_without_grad():
    w = nn.Parameter(torch.tensor([0.3, -0.2, 0.0, -0.0, 5.0]))
    untouched = nn.Parameter(torch.tensor([0.3, -0.7]))
    opt = Bop([w, untouched])  # defaults: tau = 1e-8, gamma = 1e-4
    assert opt.defaults == {"threshold": 1e-8, "gamma": 1e-4}
    # m = 1e-4 * g: 1e-4 * 1.0 = 1e-4 > 1e-8 flips w[0] (positive, positive m); the others agree in
    # no sign (w[1] negative, m positive) or have m = 1e-4 * 1e-5 = 1e-9 < tau (w[4]).
    _step(opt, w, [1.0, 1.0, -1.0, 0.0, 1e-5])
    # sign(0.0) = sign(-0.0) = +1 (x >= 0 is +1); w[2]: sign +1, m < 0, no flip.
    assert torch.equal(w.data, torch.tensor([-1.0, -1.0, 1.0, 1.0, 1.0]))
    assert torch.equal(untouched.data, torch.tensor([0.3, -0.7]))
    assert untouched not in opt.state


def test_bop_param_groups_use_their_own_hyperparameters():
    a = nn.Parameter(torch.tensor([1.0]))
    b = nn.Parameter(torch.tensor([1.0]))
    opt = Bop([{"params": [a]}, {"params": [b], "gamma": 1.0, "threshold": 0.5}], threshold=0.25, gamma=0.5)
    a.grad = torch.tensor([0.75])  # m = 0.375 > 0.25: flips
    b.grad = torch.tensor([0.75])  # m = 0.75 > 0.5: flips
    opt.step()
    assert a.item() == -1.0 and b.item() == -1.0
    a.grad = torch.tensor([-0.25])  # m = 0.5*0.375 - 0.125 = 0.0625; sign(a)*m = -0.0625: no flip
    b.grad = torch.tensor([-0.25])  # m = -0.25; sign(b)*m = 0.25 <= 0.5: no flip
    opt.step()
    assert opt.state[a]["momentum"].item() == 0.0625 and opt.state[b]["momentum"].item() == -0.25
    assert a.item() == -1.0 and b.item() == -1.0


def test_bop_closure_is_evaluated_with_grad_enabled():
    w = nn.Parameter(torch.tensor([1.0, -1.0]))
    opt = Bop([w], threshold=0.1, gamma=1.0)

    def closure():
        opt.zero_grad()
        loss = (w * torch.tensor([2.0, 2.0])).sum()  # dL/dw = 2: flips the positive weight only
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert loss.item() == 0.0
    assert torch.equal(w.data, torch.tensor([-1.0, -1.0]))


def test_bop_state_dict_round_trip_continues_identically():
    torch.manual_seed(0)
    w = nn.Parameter(torch.randn(4, 3).sign())
    opt = Bop([w], threshold=1e-3, gamma=0.25, name="bop-test")
    grads = [torch.randn(4, 3) * 0.01 for _ in range(3)]
    _step(opt, w, grads[0].tolist())
    saved = opt.state_dict()
    assert saved["param_groups"][0]["gamma"] == 0.25 and saved["param_groups"][0]["threshold"] == 1e-3
    assert torch.equal(saved["state"][0]["momentum"], 0.25 * grads[0])

    w2 = nn.Parameter(w.detach().clone())
    opt2 = Bop([w2])  # other hyper-parameters: load_state_dict restores the saved ones
    opt2.load_state_dict(_through_file(saved))
    assert opt2.param_groups[0]["gamma"] == 0.25 and opt2.name == "Bop"
    for g in grads[1:]:
        _step(opt, w, g.tolist())
        _step(opt2, w2, g.tolist())
    assert torch.equal(w.data, w2.data)
    assert torch.equal(opt.state[w]["momentum"], opt2.state[w2]["momentum"])
    assert opt.name == "bop-test"


@pytest.mark.parametrize("kwargs", [{"gamma": 0.0}, {"gamma": 1.5}, {"threshold": -1e-8}])
def test_bop_rejects_bad_hyperparameters(kwargs):
    with pytest.raises(ValueError):
        Bop([nn.Parameter(torch.ones(2))], **kwargs)


def test_case_optimizer_steps_each_optimizer_on_its_own_parameters():
    binary = nn.Parameter(torch.tensor([1.0, -1.0]))
    real = nn.Parameter(torch.tensor([0.5, 0.5]))
    opt = CaseOptimizer(Bop([binary], threshold=0.1, gamma=1.0), torch.optim.SGD([real], lr=0.5))
    assert len(opt.param_groups) == 2 and opt.param_groups[1]["lr"] == 0.5
    binary.grad = torch.tensor([1.0, 1.0])  # m = g = 1: flips +1 (agreeing sign), keeps -1
    real.grad = torch.tensor([1.0, -1.0])  # SGD: 0.5 - 0.5 * g
    opt.step()
    assert torch.equal(binary.data, torch.tensor([-1.0, -1.0]))
    assert torch.equal(real.data, torch.tensor([0.0, 1.0]))
    opt.zero_grad()
    assert binary.grad is None and real.grad is None

    state = opt.state_dict()
    binary2 = nn.Parameter(binary.detach().clone())
    real2 = nn.Parameter(real.detach().clone())
    opt2 = CaseOptimizer(Bop([binary2]), torch.optim.SGD([real2], lr=0.1))
    opt2.load_state_dict(_through_file(state))
    assert opt2.param_groups[0]["gamma"] == 1.0 and opt2.param_groups[1]["lr"] == 0.5
    assert torch.equal(opt2.optimizers[0].state[binary2]["momentum"], torch.tensor([1.0, 1.0]))
    with pytest.raises(OnebitError, match="same optimizers"):
        opt2.load_state_dict({"optimizers": [state["optimizers"][0]]})


def test_case_optimizer_rejects_a_parameter_in_two_optimizers():
    p = nn.Parameter(torch.ones(2))
    with pytest.raises(OnebitError, match="optimizer 0 and optimizer 1"):
        CaseOptimizer(Bop([p]), torch.optim.SGD([p], lr=0.1))
    with pytest.raises(OnebitError):
        CaseOptimizer()


def test_bop_trains_a_real_binary_layer_to_its_teacher():
    # A binary QuantLinear learns the +-1 weights of a teacher from sign(x) -> sign(x) @ W*^T.
    # ste_sign's gradient passes at |w| = 1 (inclusive clip), so Bop sees gradients every step.
    from onebit.nn import QuantLinear

    torch.manual_seed(0)
    teacher = torch.randn(8, 16).sign()
    layer = QuantLinear(16, 8, bias=False, input_quantizer="ste_sign", kernel_quantizer="ste_sign",
                        kernel_clip=1.0)
    opt = Bop([layer.weight], threshold=1e-3, gamma=0.1)
    x = torch.randn(256, 16)
    y = x.sign() @ teacher.T
    first = None
    for _ in range(40):
        opt.zero_grad()
        loss = ((layer(x) - y) ** 2).mean()
        first = loss.item() if first is None else first
        loss.backward()
        opt.step()
        assert set(layer.weight.unique().tolist()) <= {-1.0, 1.0}
    assert first > 10.0 and torch.equal(layer.weight.data, teacher)


def test_documented_bop_plus_adam_recipe():
    from onebit.nn import QuantConv2d
    from onebit.optim import quantized_kernels

    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        QuantConv2d(4, 4, 3, padding=1, bias=False, input_quantizer="ste_sign",
                    kernel_quantizer="ste_sign", kernel_clip=1.0),
    )
    binary = [p for _, p in quantized_kernels(model, max_precision=1.0)]
    ids = {id(p) for p in binary}
    rest = [p for p in model.parameters() if id(p) not in ids]
    opt = CaseOptimizer(Bop(binary), torch.optim.Adam(rest, lr=1e-3))
    assert binary == [model[2].weight] and len(rest) == 4  # conv weight + bias, BN weight + bias
    stem_before = model[0].weight.detach().clone()
    model(torch.randn(2, 1, 5, 5)).square().mean().backward()
    opt.step()
    assert set(model[2].weight.unique().tolist()) <= {-1.0, 1.0}  # binarized by the first step
    assert not torch.equal(model[0].weight, stem_before)  # Adam moved the float stem
