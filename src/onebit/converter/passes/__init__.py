"""Graph rewrites on the converter IR, one file each, run in this order by ``onebit.converter.convert``:

1. ``commute_affine_pool``: ``maxpool -> scale_bias`` (positive scales) becomes
   ``scale_bias -> maxpool``, so the BatchNorm can fold into the conv before the pool;
2. ``fold_batchnorm``: ``scale_bias`` into the preceding conv/dense (float: weights and bias;
   binary: multiplier and bias);
3. ``fuse_activation``: ReLU / clamp into the preceding op's output transform (``clamp_min``/``clamp_max``);
4. ``binary_maxpool``: ``quantize(maxpool(x))`` -> ``bmaxpool2d(quantize(x))`` (LCE sec. 3.2);
5. ``bitpacked_output``: a binary conv/dense read only by ``quantize`` writes bitpacked output
   through integer thresholds (LCE sec. 3.1-3.2);
6. ``flatten_order``: drop the NHWC -> NCHW transpose before a flatten read only by dense layers
   by permuting their weight columns;
7. ``pack_weights``: binary weights -> packed OHWI uint32 (32x smaller), ternary -> tq2.

Each pass is ``run(graph) -> int`` (how many rewrites it made) and leaves the graph valid.
"""

from onebit.converter.passes import (
    binary_maxpool,
    bitpacked_output,
    commute_affine_pool,
    flatten_order,
    fold_batchnorm,
    fuse_activation,
    pack_weights,
)

PIPELINE = (
    commute_affine_pool,
    fold_batchnorm,
    fuse_activation,
    binary_maxpool,
    bitpacked_output,
    flatten_order,
    pack_weights,
)

__all__ = ["PIPELINE", *(p.__name__.rsplit(".", 1)[1] for p in PIPELINE)]
