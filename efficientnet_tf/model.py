"""The user-facing builders: `EfficientNet` (the graph of `network` plus `weights=`), the
keras.applications-style `EfficientNetB0`..`B8`, `L2`, and `create_model` by variant or phi."""

from __future__ import annotations

import inspect
from typing import Any

import keras

from efficientnet_tf.architecture import PRESETS, builder_arguments
from efficientnet_tf.network import build_network
from efficientnet_tf.weights import load_pretrained


def EfficientNet(*args: Any, **kwargs: Any) -> keras.Model:
    """Builds an EfficientNet as a Keras functional model (an `EfficientNetModel`, which records
    its variant and scaling coefficients in its config). The arguments are `build_network`'s,
    to which they are forwarded, plus `weights`: `inspect.signature(EfficientNet)` and `help()`
    show them all.

    Args:
        width_coefficient, depth_coefficient: channel and depth multipliers.
        default_resolution: input size used when `input_shape` is not given.
        dropout_rate: dropout before the classifier.
        stochastic_depth_rate: stochastic depth rate of the last block (linear in block index).
        blocks: stage table as reference block strings or `BlockArgs`.
        small_images: the 32x32 variant (stages 2 and 3 use stride 1).
        include_top: add pooling, dropout and the classifier.
        include_preprocessing: inputs are float RGB 0..255, normalized inside the model;
            with False the model expects already normalized inputs.
        weights: None, a weights file path, "imagenet" or "noisy-student" (see `weights`).
        input_tensor, input_shape, pooling, classes, classifier_activation: as in
            keras.applications.
        name: the Keras model name.
        sync_batch_norm: cross-replica batch norm under a tf.distribute strategy.
        normalization_mean, normalization_std: per-channel statistics in 0..1 units.
    """
    try:
        arguments = EfficientNet.__signature__.bind(*args, **kwargs).arguments
    except TypeError as err:  # as Python words it for a function with this signature
        raise TypeError(f"EfficientNet() {err}") from None
    weights = arguments.pop("weights", None)
    model = build_network(**arguments)
    if weights is not None:
        load_pretrained(model, weights)
    return model


def _with_weights(signature: inspect.Signature) -> inspect.Signature:
    """`build_network`'s signature with `weights` after `include_preprocessing`: the public
    signature of `EfficientNet`, which forwards every other argument to `build_network`."""
    parameters = list(signature.parameters.values())
    position = [p.name for p in parameters].index("include_preprocessing") + 1
    weights = inspect.Parameter("weights", inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                default=None, annotation="str | None")
    return signature.replace(parameters=[*parameters[:position], weights,
                                         *parameters[position:]],
                             return_annotation="keras.Model")


EfficientNet.__signature__ = _with_weights(inspect.signature(build_network))


_VARIANT_DOC = """Builds EfficientNet-{variant}: {resolution}px, width {width}, depth {depth}.

    Signature as keras.applications (`include_top`, `weights`, `input_tensor`, `input_shape`,
    `pooling`, `classes`, `classifier_activation`); other keyword arguments go to `EfficientNet`,
    e.g. `stochastic_depth_rate`, `dropout_rate`, `small_images`, `include_preprocessing`.
    Inputs are float RGB in 0..255 unless `include_preprocessing=False`.
    """


def _variant(preset_name: str):
    preset = PRESETS[preset_name]
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


def create_model(
    variant: str | None = None, *, phi: float | None = None, **overrides
) -> keras.Model:
    """Builds a variant by reference name ('efficientnet-b3', 'b3', 'l2', ...) or by compound
    coefficient (`phi=1.5`, with `alpha`, `beta`, `gamma`, `base_resolution`, `base_width`,
    `base_depth` optional): depth base_depth * alpha**phi, width base_width * beta**phi,
    resolution base_resolution * gamma**phi (`noisy-student-scaling-search` finds alpha, beta,
    gamma for a base network and prints the call).

    Any `EfficientNet` argument but `name` (which follows the variant) can be overridden,
    e.g. `classes=10, small_images=True`.
    """
    config, preset = builder_arguments(variant, phi=phi, **overrides)
    if preset is not None:
        config["weights"] = _with_preset(config.get("weights"), preset)
    return EfficientNet(**config)
