"""EfficientNet builder: block-string decoding, scaling of the block table, variant wrappers.

One parameterized constructor (`EfficientNet`) builds every variant; `EfficientNetB0`..`B8`, `L2`
and `create_model` are thin wrappers over it. Layer names follow keras.applications (`stem_conv`,
`block2a`, `top_conv`, `predictions`), so weight mapping is a matter of names.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence

import keras
from keras import layers

from efficientnet_tf import scaling
from efficientnet_tf.blocks import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    InputNormalization,
    MBConvBlock,
    batch_norm,
    conv2d,
    dense_kernel_initializer,
)

MIN_INPUT_SIZE = 32


@dataclasses.dataclass(frozen=True)
class BlockArgs:
    """One stage of the block table, as in the reference's block strings."""

    repeats: int
    kernel_size: int
    strides: int
    expand_ratio: int
    input_filters: int
    output_filters: int
    se_ratio: float | None = None
    id_skip: bool = True


DEFAULT_BLOCKS: tuple[str, ...] = (
    "r1_k3_s11_e1_i32_o16_se0.25",
    "r2_k3_s22_e6_i16_o24_se0.25",
    "r2_k5_s22_e6_i24_o40_se0.25",
    "r3_k3_s22_e6_i40_o80_se0.25",
    "r3_k5_s11_e6_i80_o112_se0.25",
    "r4_k5_s22_e6_i112_o192_se0.25",
    "r1_k3_s11_e6_i192_o320_se0.25",
)
STEM_FILTERS = 32
HEAD_FILTERS = 1280
SMALL_IMAGE_STAGES = (1, 2)  # stages that use stride 1 in the 32x32 variant

_TOKEN = re.compile(r"^(noskip|se[0-9.]+|[rkseio][0-9]+)$")


def decode_block_string(block_string: str) -> BlockArgs:
    """Parses a reference block string such as 'r2_k3_s22_e6_i16_o24_se0.25'."""
    fields: dict[str, str] = {}
    id_skip = True
    for token in block_string.split("_"):
        if not _TOKEN.match(token):
            raise ValueError(
                f"Bad token {token!r} in block string {block_string!r}; expected tokens like "
                "r2, k3, s22, e6, i16, o24, se0.25, noskip."
            )
        if token == "noskip":
            id_skip = False
        elif token.startswith("se"):
            fields["se"] = token[2:]
        else:
            fields[token[0]] = token[1:]
    missing = [key for key in "rkseio" if key not in fields]
    if missing:
        raise ValueError(f"Block string {block_string!r} lacks fields {missing}.")
    stride = fields["s"]
    if len(stride) not in (1, 2) or (len(stride) == 2 and stride[0] != stride[1]):
        raise ValueError(f"Block string {block_string!r}: only square strides are supported.")
    return BlockArgs(
        repeats=int(fields["r"]),
        kernel_size=int(fields["k"]),
        strides=int(stride[0]),
        expand_ratio=int(fields["e"]),
        input_filters=int(fields["i"]),
        output_filters=int(fields["o"]),
        se_ratio=float(fields["se"]) if "se" in fields else None,
        id_skip=id_skip,
    )


def encode_block_string(args: BlockArgs) -> str:
    """Inverse of `decode_block_string`."""
    parts = [
        f"r{args.repeats}",
        f"k{args.kernel_size}",
        f"s{args.strides}{args.strides}",
        f"e{args.expand_ratio}",
        f"i{args.input_filters}",
        f"o{args.output_filters}",
    ]
    if args.se_ratio:
        parts.append(f"se{args.se_ratio:g}")
    if not args.id_skip:
        parts.append("noskip")
    return "_".join(parts)


@dataclasses.dataclass(frozen=True)
class BlockSpec:
    """One concrete MBConv block after scaling: what the builder instantiates."""

    name: str
    stage: int
    kernel_size: int
    strides: int
    expand_ratio: int
    input_filters: int
    output_filters: int
    se_ratio: float | None
    id_skip: bool
    drop_rate: float


def scaled_blocks(
    blocks: Sequence[str | BlockArgs] = DEFAULT_BLOCKS,
    width: float = 1.0,
    depth: float = 1.0,
    drop_connect_rate: float = 0.2,
    small_images: bool = False,
    depth_divisor: int = 8,
) -> list[BlockSpec]:
    """Expands the stage table into concrete blocks: filters and repeats scaled, the first block
    of a stage takes its stride and filter change, drop-connect rate = rate * index / total."""
    stages = [b if isinstance(b, BlockArgs) else decode_block_string(b) for b in blocks]
    repeats = [scaling.round_repeats(stage.repeats, depth) for stage in stages]
    total = sum(repeats)
    specs: list[BlockSpec] = []
    for stage_index, (stage, count) in enumerate(zip(stages, repeats, strict=True)):
        in_filters = scaling.round_filters(stage.input_filters, width, depth_divisor)
        out_filters = scaling.round_filters(stage.output_filters, width, depth_divisor)
        stride = 1 if small_images and stage_index in SMALL_IMAGE_STAGES else stage.strides
        for repeat in range(count):
            specs.append(
                BlockSpec(
                    name=f"block{stage_index + 1}{_letters(repeat)}",
                    stage=stage_index,
                    kernel_size=stage.kernel_size,
                    strides=stride if repeat == 0 else 1,
                    expand_ratio=stage.expand_ratio,
                    input_filters=in_filters if repeat == 0 else out_filters,
                    output_filters=out_filters,
                    se_ratio=stage.se_ratio,
                    id_skip=stage.id_skip,
                    drop_rate=drop_connect_rate * len(specs) / total,
                )
            )
    return specs


def _letters(index: int) -> str:
    """0 -> 'a', 25 -> 'z', 26 -> 'ba' ...: keras.applications style block suffixes, extended
    past 26 repeats (L2 has 22 blocks in one stage, custom variants may have more)."""
    text = ""
    while True:
        text = chr(ord("a") + index % 26) + text
        index //= 26
        if index == 0:
            return text


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


def EfficientNet(
    width_coefficient: float,
    depth_coefficient: float,
    default_resolution: int,
    dropout_rate: float = 0.2,
    drop_connect_rate: float = 0.2,
    blocks: Sequence[str | BlockArgs] = DEFAULT_BLOCKS,
    small_images: bool = False,
    include_top: bool = True,
    include_preprocessing: bool = True,
    weights: str | None = None,
    input_tensor=None,
    input_shape: Sequence[int | None] | None = None,
    pooling: str | None = None,
    classes: int = 1000,
    classifier_activation: str | None = "softmax",
    name: str | None = None,
    depth_divisor: int = 8,
    activation: str = "swish",
    sync_batch_norm: bool = False,
    normalization_mean: Sequence[float] = IMAGENET_MEAN,
    normalization_std: Sequence[float] = IMAGENET_STD,
) -> keras.Model:
    """Builds an EfficientNet as a Keras functional model.

    Args:
        width_coefficient, depth_coefficient: channel and depth multipliers.
        default_resolution: input size used when `input_shape` is not given.
        dropout_rate: dropout before the classifier.
        drop_connect_rate: stochastic depth rate of the last block (linear in block index).
        blocks: stage table as reference block strings or `BlockArgs`.
        small_images: the 32x32 variant (stages 2 and 3 use stride 1).
        include_top: add pooling, dropout and the classifier.
        include_preprocessing: inputs are float RGB 0..255, normalized inside the model;
            with False the model expects already normalized inputs.
        weights: None, a weights file path, "imagenet" or "noisy-student" (see `weights`).
        input_tensor, input_shape, pooling, classes, classifier_activation: as in
            keras.applications.
        sync_batch_norm: cross-replica batch norm under a tf.distribute strategy.
        normalization_mean, normalization_std: per-channel statistics in 0..1 units.
    """
    if pooling not in (None, "avg", "max"):
        raise ValueError(f"pooling must be None, 'avg' or 'max', got {pooling!r}.")
    if include_top and classes < 1:
        raise ValueError(f"classes must be >= 1 with include_top=True, got {classes}.")
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
        scaling.round_filters(STEM_FILTERS, width_coefficient, depth_divisor),
        3,
        strides=2,
        name="stem_conv",
    )(x)
    x = batch_norm("stem_bn", sync_batch_norm)(x)
    x = layers.Activation(activation, name="stem_activation")(x)

    for spec in scaled_blocks(
        blocks, width_coefficient, depth_coefficient, drop_connect_rate, small_images, depth_divisor
    ):
        x = MBConvBlock(
            input_filters=spec.input_filters,
            output_filters=spec.output_filters,
            kernel_size=spec.kernel_size,
            strides=spec.strides,
            expand_ratio=spec.expand_ratio,
            se_ratio=spec.se_ratio,
            id_skip=spec.id_skip,
            drop_rate=spec.drop_rate,
            activation=activation,
            sync_batch_norm=sync_batch_norm,
            name=spec.name,
        )(x)

    x = conv2d(
        scaling.round_filters(HEAD_FILTERS, width_coefficient, depth_divisor), 1, name="top_conv"
    )(x)
    x = batch_norm("top_bn", sync_batch_norm)(x)
    x = layers.Activation(activation, name="top_activation")(x)

    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        if dropout_rate > 0:
            x = layers.Dropout(dropout_rate, name="top_dropout")(x)
        x = layers.Dense(
            classes,
            activation=classifier_activation,
            kernel_initializer=dense_kernel_initializer(),
            bias_initializer="zeros",
            name="predictions",
        )(x)
    elif pooling == "avg":
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    elif pooling == "max":
        x = layers.GlobalMaxPooling2D(name="max_pool")(x)

    model = keras.Model(inputs, x, name=name or "efficientnet")
    if weights is not None:
        from efficientnet_tf.weights import load_pretrained  # avoids an import cycle

        load_pretrained(model, weights)
    return model


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


_VARIANT_DOC = """Builds EfficientNet-{variant}: {resolution}px, width {width}, depth {depth}.

    Signature as keras.applications (`include_top`, `weights`, `input_tensor`, `input_shape`,
    `pooling`, `classes`, `classifier_activation`); other keyword arguments go to `EfficientNet`,
    e.g. `drop_connect_rate`, `dropout_rate`, `small_images`, `include_preprocessing`.
    Inputs are float RGB in 0..255 unless `include_preprocessing=False`.
    """


def _variant(preset_name: str):
    preset = scaling.PRESETS[preset_name]
    short = preset_name.split("-")[1].upper()

    def constructor(
        include_top: bool = True,
        weights: str | None = None,
        input_tensor=None,
        input_shape=None,
        pooling: str | None = None,
        classes: int = 1000,
        classifier_activation: str | None = "softmax",
        **kwargs,
    ) -> keras.Model:
        kwargs.setdefault("name", f"efficientnet{short.lower()}")
        kwargs.setdefault("dropout_rate", preset.dropout)
        return EfficientNet(
            preset.width,
            preset.depth,
            preset.resolution,
            include_top=include_top,
            weights=_with_preset(weights, preset_name),
            input_tensor=input_tensor,
            input_shape=input_shape,
            pooling=pooling,
            classes=classes,
            classifier_activation=classifier_activation,
            **kwargs,
        )

    constructor.__name__ = constructor.__qualname__ = f"EfficientNet{short}"
    constructor.__doc__ = _VARIANT_DOC.format(
        variant=short, resolution=preset.resolution, width=preset.width, depth=preset.depth
    )
    return constructor


def _with_preset(weights: str | None, preset_name: str) -> str | None:
    """Published weights are per preset: 'imagenet' becomes 'imagenet:efficientnet-b3'."""
    if weights in ("imagenet", "noisy-student"):
        return f"{weights}:{preset_name}"
    return weights


EfficientNetB0 = _variant("efficientnet-b0")
EfficientNetB1 = _variant("efficientnet-b1")
EfficientNetB2 = _variant("efficientnet-b2")
EfficientNetB3 = _variant("efficientnet-b3")
EfficientNetB4 = _variant("efficientnet-b4")
EfficientNetB5 = _variant("efficientnet-b5")
EfficientNetB6 = _variant("efficientnet-b6")
EfficientNetB7 = _variant("efficientnet-b7")
EfficientNetB8 = _variant("efficientnet-b8")
EfficientNetL2 = _variant("efficientnet-l2")


def model_config(
    name: str | None = None,
    *,
    phi: float | None = None,
    alpha: float = scaling.DEFAULT_ALPHA,
    beta: float = scaling.DEFAULT_BETA,
    gamma: float = scaling.DEFAULT_GAMMA,
    base_resolution: int = 224,
) -> dict:
    """Builder arguments (width, depth, resolution, dropout, name) for a preset name or a
    compound coefficient phi (exactly one of the two)."""
    if name is not None and phi is not None:
        raise ValueError(
            f"Give either a variant name or phi, not both (got name={name!r}, phi={phi})."
        )
    if phi is not None:
        width, depth, resolution = scaling.compound_scaling(
            phi, alpha, beta, gamma, base_resolution
        )
        return {
            "width_coefficient": width,
            "depth_coefficient": depth,
            "default_resolution": resolution,
            "dropout_rate": 0.2,
            "name": f"efficientnet_phi{phi:g}",
        }
    preset_name = scaling.canonical_name(name or "efficientnet-b0")
    preset = scaling.PRESETS[preset_name]
    return {
        "width_coefficient": preset.width,
        "depth_coefficient": preset.depth,
        "default_resolution": preset.resolution,
        "dropout_rate": preset.dropout,
        "name": preset_name.replace("-", ""),
        "preset": preset_name,
    }


def create_model(name: str | None = None, *, phi: float | None = None, **overrides) -> keras.Model:
    """Builds a variant by reference name ('efficientnet-b3', 'b3', 'l2', ...) or by compound
    coefficient (`phi=1.5`, with `alpha`, `beta`, `gamma`, `base_resolution` optional).

    Any `EfficientNet` argument can be overridden, e.g. `classes=10, small_images=True`.
    """
    scaling_keys = ("alpha", "beta", "gamma", "base_resolution")
    scaling_args = {key: overrides.pop(key) for key in scaling_keys if key in overrides}
    config = model_config(name, phi=phi, **scaling_args)
    preset = config.pop("preset", None)
    config.update(overrides)
    if preset is not None:
        config["weights"] = _with_preset(config.get("weights"), preset)
    return EfficientNet(**config)
