"""Model zoo (timm style): ``create_model(name, **overrides)``, ``list_models(pattern)``.

Families, one file each: QuickNet Small/Medium/Large (``quicknet``), Bi-RealNet-18
(``birealnet``), BinaryAlexNet (``binary_alexnet``); each in an ImageNet variant (224x224, 1000
classes, same binary parameter and MAC counts as Larq Zoo) and a ``*_cifar`` variant (32x32).
Importing this package registers them all.
"""

from onebit.models.registry import (
    ModelCfg,
    Reference,
    build_model,
    create_model,
    list_models,
    register_model,
)
from onebit.models import binary_alexnet, birealnet, quicknet  # noqa: F401  (registers models)

__all__ = [
    "ModelCfg",
    "Reference",
    "register_model",
    "create_model",
    "list_models",
    "build_model",
]
