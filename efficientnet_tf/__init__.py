"""EfficientNet B0-B8, L2 and any compound-scaled variant, in Keras 3 (any backend).

Modules: `architecture` (presets, scaling, block table; no Keras), `blocks` (layers), with
`batch_norm`, `convolutions` and `activations` (Keras layers with faster TensorFlow computations,
switched by `fast_paths`), `network` (the graph), `model` (builders with `weights=`), `grow`
(a trained model widened and deepened without changing its function), `weights` (pretrained
weights by source), `complexity` (MAC counts), `rebuild` (a model's graph rebuilt layer by
layer) with `portable` (built-in Keras layers only) and `folding` (batch norms folded into their
convolutions, for inference).
"""

from efficientnet_tf.activations import FusedActivation
from efficientnet_tf.architecture import (
    DEFAULT_BLOCKS,
    PRESETS,
    Architecture,
    BlockArgs,
    compound_scaling,
    decode_block_string,
    encode_block_string,
    model_config,
    scaled_blocks,
)
from efficientnet_tf.batch_norm import FusedBatchNormalization
from efficientnet_tf.blocks import (
    InputNormalization,
    MBConvBlock,
    SqueezeExcite,
    StochasticDepth,
)
from efficientnet_tf.convolutions import PointwiseConv2D, SmallMapDepthwiseConv2D
from efficientnet_tf.fast_paths import keras_computation
from efficientnet_tf.folding import fold_batch_norm
from efficientnet_tf.grow import grow_model
from efficientnet_tf.model import (
    EfficientNet,
    EfficientNetB0,
    EfficientNetB1,
    EfficientNetB2,
    EfficientNetB3,
    EfficientNetB4,
    EfficientNetB5,
    EfficientNetB6,
    EfficientNetB7,
    EfficientNetB8,
    EfficientNetL2,
    create_model,
)
from efficientnet_tf.network import EfficientNetModel, architecture_of, feature_endpoints
from efficientnet_tf.portable import portable_model
from efficientnet_tf.weights import from_keras_applications, from_tf_checkpoint, load_pretrained

__all__ = [
    "DEFAULT_BLOCKS",
    "PRESETS",
    "Architecture",
    "BlockArgs",
    "EfficientNet",
    "EfficientNetB0",
    "EfficientNetB1",
    "EfficientNetB2",
    "EfficientNetB3",
    "EfficientNetB4",
    "EfficientNetB5",
    "EfficientNetB6",
    "EfficientNetB7",
    "EfficientNetB8",
    "EfficientNetL2",
    "EfficientNetModel",
    "FusedActivation",
    "FusedBatchNormalization",
    "InputNormalization",
    "MBConvBlock",
    "PointwiseConv2D",
    "SmallMapDepthwiseConv2D",
    "SqueezeExcite",
    "StochasticDepth",
    "architecture_of",
    "compound_scaling",
    "create_model",
    "decode_block_string",
    "encode_block_string",
    "feature_endpoints",
    "fold_batch_norm",
    "grow_model",
    "from_keras_applications",
    "from_tf_checkpoint",
    "keras_computation",
    "load_pretrained",
    "model_config",
    "portable_model",
    "scaled_blocks",
]
