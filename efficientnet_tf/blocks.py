"""EfficientNet building blocks as Keras 3 layers (public `keras.layers` / `keras.ops` API only).

Numerics follow the reference (tensorflow/tpu `efficientnet_model.py`): convolutions without bias,
TF 'SAME' padding, batch norm momentum 0.99 / epsilon 1e-3, swish, squeeze-excite sized from the
block's input filters, per-sample stochastic depth scaled by the keep probability.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import layers, ops

from efficientnet_tf.activations import FusedActivation
from efficientnet_tf.batch_norm import FusedBatchNormalization
from efficientnet_tf.convolutions import PointwiseConv2D, SmallMapDepthwiseConv2D

PACKAGE = "efficientnet_tf"

BN_MOMENTUM = 0.99
BN_EPSILON = 1e-3
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def conv_kernel_initializer() -> keras.initializers.Initializer:
    """Reference conv init: untruncated normal with std sqrt(2 / fan_out)."""
    return keras.initializers.VarianceScaling(2.0, "fan_out", "untruncated_normal")


def dense_kernel_initializer() -> keras.initializers.Initializer:
    """Reference dense init: uniform(-1/sqrt(units), 1/sqrt(units))."""
    return keras.initializers.VarianceScaling(1.0 / 3.0, "fan_out", "uniform")


def batch_norm(name: str, synchronized: bool = False) -> FusedBatchNormalization:
    """Batch norm with the reference settings (fused kernel when training on TensorFlow);
    `synchronized` gives cross-replica statistics under a tf.distribute strategy."""
    return FusedBatchNormalization(
        momentum=BN_MOMENTUM, epsilon=BN_EPSILON, synchronized=synchronized, name=name
    )


def conv2d(filters: int, kernel_size: int, name: str, strides: int = 1) -> layers.Conv2D:
    """Bias-free convolution with TF 'SAME' padding and the reference initializer (1x1 ones
    run as a matrix product on TensorFlow)."""
    conv = PointwiseConv2D if kernel_size == 1 and strides == 1 else layers.Conv2D
    return conv(
        filters,
        kernel_size,
        strides=strides,
        padding="same",
        use_bias=False,
        kernel_initializer=conv_kernel_initializer(),
        name=name,
    )


@keras.saving.register_keras_serializable(package=PACKAGE)
class InputNormalization(layers.Layer):
    """Maps float RGB in 0..255 to (x/255 - mean) / std with constant (not adapted) statistics."""

    def __init__(
        self,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        if len(self.mean) != len(self.std) or min(self.std) <= 0:
            raise ValueError(f"mean {self.mean} and std {self.std} need equal length, std > 0.")

    def call(self, inputs):
        dtype = self.compute_dtype
        scale = ops.convert_to_tensor([1.0 / (255.0 * s) for s in self.std], dtype=dtype)
        offset = ops.convert_to_tensor(
            [-m / s for m, s in zip(self.mean, self.std, strict=True)], dtype=dtype
        )
        return ops.cast(inputs, self.compute_dtype) * scale + offset

    def get_config(self):
        return {**super().get_config(), "mean": list(self.mean), "std": list(self.std)}


@keras.saving.register_keras_serializable(package=PACKAGE)
class StochasticDepth(layers.Layer):
    """Stochastic depth: drops the whole residual branch per sample with probability `rate`
    during training, scaling survivors by 1 / (1 - rate)."""

    def __init__(self, rate: float, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"Stochastic depth rate must be in [0, 1), got {rate}.")
        self.rate = float(rate)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed) if rate > 0 else None

    def call(self, inputs, training=None):
        if not training or self.rate == 0.0:
            return inputs
        keep = 1.0 - self.rate
        shape = (ops.shape(inputs)[0],) + (1,) * (len(inputs.shape) - 1)
        noise = keras.random.uniform(shape, dtype=inputs.dtype, seed=self.seed_generator)
        mask = ops.floor(keep + noise)
        return inputs * (mask / keep)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}


# `.keras` files saved when StochasticDepth was called DropConnect load as StochasticDepth
# (deserialization only: there is no DropConnect class).
keras.saving.get_custom_objects()[f"{PACKAGE}>DropConnect"] = StochasticDepth


@keras.saving.register_keras_serializable(package=PACKAGE)
class SqueezeExcite(layers.Layer):
    """Channel attention: global mean -> 1x1 conv (swish) -> 1x1 conv (sigmoid) -> rescale."""

    def __init__(self, reduced_filters: int, expanded_filters: int, **kwargs):
        super().__init__(**kwargs)
        self.reduced_filters = int(reduced_filters)
        self.expanded_filters = int(expanded_filters)
        self.reduce = PointwiseConv2D(
            self.reduced_filters,
            1,
            activation="swish",
            kernel_initializer=conv_kernel_initializer(),
            name="reduce",
        )
        self.expand = PointwiseConv2D(
            self.expanded_filters,
            1,
            activation="sigmoid",
            kernel_initializer=conv_kernel_initializer(),
            name="expand",
        )

    def build(self, input_shape):
        pooled = (input_shape[0], 1, 1, input_shape[-1])
        self.reduce.build(pooled)
        self.expand.build((input_shape[0], 1, 1, self.reduced_filters))

    def call(self, inputs):
        squeezed = ops.mean(inputs, axis=(1, 2), keepdims=True)
        return inputs * self.expand(self.reduce(squeezed))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "reduced_filters": self.reduced_filters,
            "expanded_filters": self.expanded_filters,
        }


@keras.saving.register_keras_serializable(package=PACKAGE)
class MBConvBlock(layers.Layer):
    """Mobile inverted bottleneck with squeeze-excite (the EfficientNet block).

    expand 1x1 (if expand_ratio != 1) -> BN -> swish -> depthwise kxk -> BN -> swish -> SE ->
    project 1x1 -> BN -> (stochastic depth + identity when stride 1 and input == output
    filters).
    """

    def __init__(
        self,
        input_filters: int,
        output_filters: int,
        kernel_size: int = 3,
        strides: int = 1,
        expand_ratio: int = 1,
        se_ratio: float | None = 0.25,
        id_skip: bool = True,
        stochastic_depth_rate: float = 0.0,
        activation: str = "swish",
        sync_batch_norm: bool = False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.input_filters = int(input_filters)
        self.output_filters = int(output_filters)
        self.kernel_size = int(kernel_size)
        self.strides = int(strides)
        self.expand_ratio = int(expand_ratio)
        self.se_ratio = se_ratio
        self.id_skip = bool(id_skip)
        self.stochastic_depth_rate = float(stochastic_depth_rate)
        self.activation = activation
        self.sync_batch_norm = bool(sync_batch_norm)

        expanded = self.input_filters * self.expand_ratio
        self.act = FusedActivation(activation, name="activation")
        if self.expand_ratio != 1:
            self.expand_conv = conv2d(expanded, 1, name="expand_conv")
            self.expand_bn = batch_norm("expand_bn", self.sync_batch_norm)
        self.dwconv = SmallMapDepthwiseConv2D(
            self.kernel_size,
            strides=self.strides,
            padding="same",
            use_bias=False,
            depthwise_initializer=conv_kernel_initializer(),
            name="dwconv",
        )
        self.bn = batch_norm("bn", self.sync_batch_norm)
        self.se = None
        if se_ratio and 0 < se_ratio <= 1:
            reduced = max(1, int(self.input_filters * se_ratio))
            self.se = SqueezeExcite(reduced, expanded, name="se")
        self.project_conv = conv2d(self.output_filters, 1, name="project_conv")
        self.project_bn = batch_norm("project_bn", self.sync_batch_norm)
        self.drop = (
            StochasticDepth(self.stochastic_depth_rate, name="drop") if self.has_skip else None
        )

    @classmethod
    def from_config(cls, config):
        """Also reads `.keras` files saved when `stochastic_depth_rate` was `drop_rate`."""
        config = dict(config)
        if "drop_rate" in config:
            config["stochastic_depth_rate"] = config.pop("drop_rate")
        return cls(**config)

    @property
    def has_skip(self) -> bool:
        """True when the block adds its input back (stride 1, same filters, id_skip on)."""
        return self.id_skip and self.strides == 1 and self.input_filters == self.output_filters

    def build(self, input_shape):
        if input_shape[-1] != self.input_filters:
            raise ValueError(
                f"{self.name}: expects {self.input_filters} input channels, got {input_shape[-1]}."
            )
        shape = tuple(input_shape)
        if self.expand_ratio != 1:
            self.expand_conv.build(shape)
            shape = self.expand_conv.compute_output_shape(shape)
            self.expand_bn.build(shape)
        self.dwconv.build(shape)
        shape = self.dwconv.compute_output_shape(shape)
        self.bn.build(shape)
        if self.se is not None:
            self.se.build(shape)
        self.project_conv.build(shape)
        self.project_bn.build(self.project_conv.compute_output_shape(shape))

    def call(self, inputs, training=None):
        x = inputs
        if self.expand_ratio != 1:
            x = self.act(self.expand_bn(self.expand_conv(x), training=training), training=training)
        x = self.act(self.bn(self.dwconv(x), training=training), training=training)
        if self.se is not None:
            x = self.se(x)
        x = self.project_bn(self.project_conv(x), training=training)
        if self.drop is not None:
            x = self.drop(x, training=training) + inputs
        return x

    def compute_output_shape(self, input_shape):
        shape = self.dwconv.compute_output_shape(tuple(input_shape[:-1]) + (1,))
        return tuple(shape[:-1]) + (self.output_filters,)

    def get_config(self):
        return {
            **super().get_config(),
            "input_filters": self.input_filters,
            "output_filters": self.output_filters,
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "expand_ratio": self.expand_ratio,
            "se_ratio": self.se_ratio,
            "id_skip": self.id_skip,
            "stochastic_depth_rate": self.stochastic_depth_rate,
            "activation": self.activation,
            "sync_batch_norm": self.sync_batch_norm,
        }
