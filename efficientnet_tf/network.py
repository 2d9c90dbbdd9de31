"""The EfficientNet graph: one builder for every variant, returning a model that records which
variant it is. Knows nothing about weights (`efficientnet_tf.model` adds `weights=`).

Layer names follow keras.applications (`stem_conv`, `block2a`, `top_conv`, `predictions`), so
weight mapping is a matter of names.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
from keras import layers

from efficientnet_tf.activations import FusedActivation
from efficientnet_tf.architecture import (
    DEFAULT_BLOCKS,
    DEFAULT_DEPTH_DIVISOR,
    HEAD_FILTERS,
    STEM_FILTERS,
    Architecture,
    BlockArgs,
    round_filters,
    scaled_blocks,
)
from efficientnet_tf.blocks import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    PACKAGE,
    InputNormalization,
    MBConvBlock,
    batch_norm,
    conv2d,
    dense_kernel_initializer,
)

MIN_INPUT_SIZE = 32
ARCHITECTURE_KEY = "architecture"


@keras.saving.register_keras_serializable(package=PACKAGE)
class EfficientNetModel(keras.Model):
    """A functional Keras model that also records its `Architecture` (variant, preset, scaling
    coefficients) in its config, so a saved and reloaded model still says what it is."""

    def __init__(
        self, inputs, outputs, name=None, *, architecture: Architecture | None = None, **kwargs
    ):
        super().__init__(inputs=inputs, outputs=outputs, name=name, **kwargs)
        self.architecture = architecture

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        if self.architecture is not None:
            config[ARCHITECTURE_KEY] = self.architecture.to_config()
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        record = config.pop(ARCHITECTURE_KEY, None)
        model = super().from_config(config, custom_objects=custom_objects)
        if record is not None:
            model.architecture = Architecture.from_config(record)
        return model


def architecture_of(model: keras.Model) -> Architecture | None:
    """The variant a model records, or None for a model saved before models recorded it (or
    one not built by efficientnet_tf)."""
    return getattr(model, "architecture", None)


def _resolve_input_shape(
    input_shape: Sequence[int | None] | None, default_resolution: int
) -> tuple[int | None, int | None, int]:
    """Validates an (H, W, C) shape: RGB, at least MIN_INPUT_SIZE pixels (None allowed)."""
    if input_shape is None:
        return (default_resolution, default_resolution, 3)
    shape = tuple(input_shape)
    if len(shape) != 3:
        raise ValueError(f"input_shape must be (height, width, 3), got {shape}.")
    if shape[-1] != 3:
        raise ValueError(f"EfficientNet expects 3-channel RGB input, got input_shape {shape}.")
    for dim in shape[:2]:
        if dim is not None and dim < MIN_INPUT_SIZE:
            raise ValueError(
                f"Input size {shape[:2]} is below the minimum of {MIN_INPUT_SIZE} pixels; "
                "upsample the images or use a larger input_shape."
            )
    return shape


def build_network(
    width_coefficient: float,
    depth_coefficient: float,
    default_resolution: int,
    dropout_rate: float = 0.2,
    stochastic_depth_rate: float = 0.2,
    blocks: Sequence[str | BlockArgs] = DEFAULT_BLOCKS,
    small_images: bool = False,
    include_top: bool = True,
    include_preprocessing: bool = True,
    input_tensor=None,
    input_shape: Sequence[int | None] | None = None,
    pooling: str | None = None,
    classes: int = 1000,
    classifier_activation: str | None = "softmax",
    name: str | None = None,
    depth_divisor: int = DEFAULT_DEPTH_DIVISOR,
    activation: str = "swish",
    sync_batch_norm: bool = False,
    normalization_mean: Sequence[float] = IMAGENET_MEAN,
    normalization_std: Sequence[float] = IMAGENET_STD,
) -> EfficientNetModel:
    """Builds an EfficientNet with random weights; arguments as `efficientnet_tf.EfficientNet`
    (which is this plus `weights=`)."""
    if pooling not in (None, "avg", "max"):
        raise ValueError(f"pooling must be None, 'avg' or 'max', got {pooling!r}.")
    if include_top and classes < 1:
        raise ValueError(f"classes must be >= 1 with include_top=True, got {classes}.")
    architecture = Architecture.of(
        width_coefficient,
        depth_coefficient,
        default_resolution,
        blocks,
        depth_divisor,
        small_images,
    )
    if small_images and input_shape is None and default_resolution > MIN_INPUT_SIZE:
        default_resolution = MIN_INPUT_SIZE
    if input_tensor is None:
        inputs = layers.Input(shape=_resolve_input_shape(input_shape, default_resolution))
    else:
        inputs = input_tensor
        _resolve_input_shape(tuple(inputs.shape[1:]), default_resolution)

    x = inputs
    if include_preprocessing:
        x = InputNormalization(normalization_mean, normalization_std, name="normalization")(x)
    x = conv2d(
        round_filters(STEM_FILTERS, width_coefficient, depth_divisor),
        3,
        strides=2,
        name="stem_conv",
    )(x)
    x = batch_norm("stem_bn", sync_batch_norm)(x)
    x = FusedActivation(activation, name="stem_activation")(x)

    for spec in scaled_blocks(
        blocks,
        width_coefficient,
        depth_coefficient,
        stochastic_depth_rate,
        small_images,
        depth_divisor,
    ):
        x = MBConvBlock(
            **spec.layer_arguments(), activation=activation, sync_batch_norm=sync_batch_norm
        )(x)

    x = conv2d(round_filters(HEAD_FILTERS, width_coefficient, depth_divisor), 1, name="top_conv")(x)
    x = batch_norm("top_bn", sync_batch_norm)(x)
    x = FusedActivation(activation, name="top_activation")(x)
    x = _head(x, include_top, pooling, dropout_rate, classes, classifier_activation)
    return EfficientNetModel(inputs, x, name=name or "efficientnet", architecture=architecture)


def _head(
    x,
    include_top: bool,
    pooling: str | None,
    dropout_rate: float,
    classes: int,
    classifier_activation: str | None,
):
    """Pooling, dropout and the classifier (include_top), or the optional pooling alone."""
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        if dropout_rate > 0:
            x = layers.Dropout(dropout_rate, name="top_dropout")(x)
        return layers.Dense(
            classes,
            activation=classifier_activation,
            kernel_initializer=dense_kernel_initializer(),
            bias_initializer="zeros",
            name="predictions",
        )(x)
    if pooling == "avg":
        return layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if pooling == "max":
        return layers.GlobalMaxPooling2D(name="max_pool")(x)
    return x


def feature_endpoints(model: keras.Model) -> keras.Model:
    """Returns a model mapping the same input to multi-scale feature maps for detection and
    segmentation: a dict {'reduction_1': stride 2, ..., 'reduction_5': stride 32}, each the
    output of the last layer at that stride (the last block, or `top_activation` for the
    deepest level). Works for models built with or without the top."""
    stride_layers: dict[int, str] = {}
    stride = 2  # after the stem
    stride_layers[stride] = "stem_activation"
    for layer in model.layers:
        if isinstance(layer, MBConvBlock):
            stride *= layer.strides
            stride_layers[stride] = layer.name
    stride_layers[stride] = "top_activation"
    outputs = {
        f"reduction_{index + 1}": model.get_layer(stride_layers[s]).output
        for index, s in enumerate(sorted(stride_layers))
    }
    return keras.Model(model.input, outputs, name=f"{model.name}_endpoints")
