"""`load_pretrained`: one entry point that loads any supported source into a built model."""

from __future__ import annotations

import os

import keras

from efficientnet_tf.weights.keras_applications import (
    is_keras_applications_file,
    load_keras_applications_arrays,
    read_keras_file,
)
from efficientnet_tf.weights.published import PUBLISHED_TAGS, fetch, published_weights
from efficientnet_tf.weights.targets import has_top
from efficientnet_tf.weights.tf_checkpoint import (
    infer_scope,
    load_tf_arrays,
    open_tf_checkpoint,
    resolve_checkpoint,
)
from efficientnet_tf.weights.variants import model_preset


def load_pretrained(model: keras.Model, weights: str | os.PathLike) -> None:
    """Loads weights into an efficientnet_tf model, in place.

    `weights` is one of:
      * "imagenet:<preset>" / "imagenet": the keras.applications file (top or notop variant
        following the model), md5-checked, cached under $KERAS_HOME/models;
      * "noisy-student:<preset>" / "noisy-student": the reference's Noisy Student checkpoint
        ("noisy-student-475:efficientnet-l2" for L2 at 475 px), EMA weights;
      * a path: `.keras` or our own `.weights.h5` (Keras' loader), a keras.applications `.h5` /
        `.weights.h5`, or a TF checkpoint prefix / directory of the reference code.

    Without ':<preset>', the preset is the one the model records in its config.
    """
    if not isinstance(weights, str | os.PathLike):
        raise TypeError(f"weights must be a name or a path, got {type(weights).__name__}.")
    spec = os.fspath(weights)
    if os.path.exists(spec) or os.path.exists(spec + ".index"):
        _load_path(model, spec)
        return
    tag, _, preset = spec.partition(":")
    if tag not in PUBLISHED_TAGS:
        raise ValueError(
            f"weights={spec!r} is neither an existing file nor a published name; use a path, "
            f"None, or one of {', '.join(repr(t) for t in PUBLISHED_TAGS)} (optionally "
            "':<variant>', e.g. 'imagenet:efficientnet-b3')."
        )
    preset = model_preset(model, preset)
    include_top = has_top(model)
    if include_top:
        classes = model.get_layer("predictions").weights[0].shape[-1]
        if classes != 1000:
            raise ValueError(
                f"Published '{tag}' weights have a 1000-class classifier, the model has {classes} "
                "classes: build it with include_top=False and add your own head."
            )
    published = published_weights(tag, preset, include_top)
    local = fetch(published)
    if published.archive:
        _load_checkpoint(model, local)
    else:
        load_keras_applications_arrays(model, read_keras_file(local))


def _load_path(model: keras.Model, path: str) -> None:
    if path.endswith(".h5") and is_keras_applications_file(path):
        load_keras_applications_arrays(model, read_keras_file(path))
    elif path.endswith((".keras", ".h5")):
        model.load_weights(path)
    else:
        _load_checkpoint(model, path)


def _load_checkpoint(model: keras.Model, path: str) -> None:
    """EMA weights of the single model scope of a reference checkpoint (prefix or directory)."""
    prefix = resolve_checkpoint(path)
    arrays = open_tf_checkpoint(prefix)
    description = f"checkpoint {prefix}"
    scope = infer_scope(list(arrays), description)
    load_tf_arrays(model, arrays, scope, description=description)
