"""Every registered model, converted, against its PyTorch eval output (shared by the IR and
engine end-to-end tests).

Three checks on a batch of inputs, with trained-looking random weights (``helpers.randomize``):

1. argmax of the converted logits equals torch's on >= 99.9 % of the batch;
2. bits: every binary layer's input bits in the engine equal ``sign(x)`` of the training graph.
   Signs computed from integer accumulators (binary -> binary layers) are exact; a sign of a
   float value (a residual stream) can differ where ``|x|`` is within float rounding of 0 (the
   engine folds BatchNorm and sums in another order), and one flipped bit then changes what
   every later layer sees. So torch is *teacher-forced*: its quantizers output the engine's bits,
   and each layer's ``sign(x)`` is compared with the engine's bits for that layer computed from
   the same upstream bits. A mismatch is allowed only at a rounding tie, ``|x| <= TIE * max|x|``;
3. logits: ``max |engine - forced torch| <= LOGIT_RTOL * max(1, max |logit|)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from onebit.models import create_model, list_models
from onebit.quantizers import RSign
from tests.converter.helpers import randomize

# CIFAR variants at their 32x32; ImageNet variants at a reduced 64x64 (same layers, 12x fewer
# pixels) so the whole registry runs in seconds; BinaryAlexNet's flatten size follows image_size.
SIZES = {name: 32 if name.endswith("_cifar") else 64 for name in list_models()}
BATCH = 8
ARGMAX_AGREEMENT = 0.999
LOGIT_RTOL = 1e-4
TIE = 1e-5
MAX_TIE_FRACTION = 1e-4


@dataclass
class Case:
    name: str
    model: torch.nn.Module
    x: torch.Tensor
    logits: np.ndarray
    figures: dict = field(default_factory=dict)


def make_case(name: str, seed: int = 0, batch: int = BATCH, size: int | None = None) -> Case:
    torch.manual_seed(seed)
    size = size or SIZES[name]
    kw = {"image_size": size} if name.startswith("binary_alexnet") else {}
    model = randomize(create_model(name, **kw), seed=seed, input_size=(3, size, size))
    x = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(seed + 1))
    with torch.no_grad():
        logits = model(x).numpy()
    return Case(name, model, x, logits)


def _engine_signs(outputs, probes) -> dict[str, np.ndarray]:
    signs = {}
    for out_name, (module, order) in probes.items():
        v = outputs[out_name]
        if order is not None:  # engine feature j is torch feature order[j]
            t = np.empty_like(v)
            t[:, order] = v
            v = t
        signs[module] = v
    return signs


def _forced_run(case: Case, engine_signs: dict[str, np.ndarray]):
    """torch forward whose binary layers take the engine's input bits; returns (logits, pre-sign
    values by module)."""
    pre: dict[str, np.ndarray] = {}
    hooks = []
    for mname, m in case.model.named_modules():
        q = getattr(m, "input_quantizer", None)
        if q is None or mname not in engine_signs:
            continue

        def hook(mod, args, out, mname=mname):
            x = args[0]
            if isinstance(mod, RSign):
                x = x - mod.alpha.view((1, -1) + (1,) * (x.dim() - 2))
            pre[mname] = x.numpy()
            return torch.from_numpy(engine_signs[mname]).reshape(out.shape)

        hooks.append(q.register_forward_hook(hook))
    try:
        with torch.no_grad():
            logits = case.model(case.x).numpy()
    finally:
        for h in hooks:
            h.remove()
    return logits, pre


def check(case: Case, outputs: dict[str, np.ndarray], probes) -> dict[str, float]:
    """Assert the three checks of the module doc; return the measured figures."""
    y = outputs["output"]
    assert y.shape == case.logits.shape
    agree = float((y.argmax(1) == case.logits.argmax(1)).mean())
    assert agree >= ARGMAX_AGREEMENT, (case.name, agree)

    signs = _engine_signs(outputs, probes)
    binary_layers = {n for n, m in case.model.named_modules() if getattr(m, "input_precision", 32) == 1}
    assert set(signs) == binary_layers, sorted(set(signs) ^ binary_layers)
    forced, pre = _forced_run(case, signs)
    ties = total = 0
    for name, x in pre.items():
        torch_sign = np.where(x < 0, -1.0, 1.0)
        bad = torch_sign != signs[name]
        tol = TIE * float(np.abs(x).max())
        assert np.all(np.abs(x[bad]) <= tol), (case.name, name, np.abs(x[bad]).max(), tol)
        ties += int(bad.sum())
        total += bad.size
    assert ties <= MAX_TIE_FRACTION * total, (case.name, ties, total)

    scale = max(1.0, float(np.abs(forced).max()))
    err = float(np.abs(y - forced).max())
    assert err <= LOGIT_RTOL * scale, (case.name, err, scale)
    case.figures = {"agreement": agree, "max_abs_err": err, "rel_err": err / scale, "sign_ties": ties,
                    "binary_values": total,
                    "unforced_rel_err": float(np.abs(y - case.logits).max())
                    / max(1.0, float(np.abs(case.logits).max()))}
    return case.figures
