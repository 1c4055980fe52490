"""The top-level namespace: lazy exports resolve to the real objects, and `import onebit` alone
does not import torch."""

from __future__ import annotations

import subprocess
import sys

import onebit


def test_lazy_exports_resolve_to_their_modules():
    from onebit.converter import convert
    from onebit.model_summary import summary
    from onebit.models import create_model, list_models

    assert onebit.convert is convert
    assert onebit.summary is summary
    assert onebit.create_model is create_model
    assert onebit.list_models is list_models
    for name in onebit.__all__:
        assert getattr(onebit, name) is not None, name


def test_import_onebit_does_not_import_torch():
    code = "import sys, onebit, onebit.runtime, onebit.kernels; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
