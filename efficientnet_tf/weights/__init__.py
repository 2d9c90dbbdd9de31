"""Pretrained weights for efficientnet_tf models, one module per source.

* `keras_applications`: keras.applications EfficientNetB0..B7 models and `.h5` / `.keras` files;
* `tf_checkpoint`: checkpoints of the reference TF code (tensorflow/tpu, noisystudent);
* `published`: the published names ("imagenet", "noisy-student"), download and cache;
* `targets`: our model's weighted layers and the strict all-or-nothing checks they share;
* `variants`: which variant weights belong to (recorded by the model, or read off a source);
* `loading`: `load_pretrained`, the one entry point for a built model.

This package builds models through `efficientnet_tf.network` and never imports
`efficientnet_tf.model`, which imports it for `weights=`: there is no import cycle.
"""

from efficientnet_tf.weights.keras_applications import (
    KerasSource,
    from_keras_applications,
    load_keras_applications_arrays,
    read_keras_file,
)
from efficientnet_tf.weights.loading import load_pretrained
from efficientnet_tf.weights.published import (
    Published,
    cache_dir,
    fetch,
    published_weights,
)
from efficientnet_tf.weights.tf_checkpoint import (
    from_tf_checkpoint,
    infer_scope,
    load_tf_arrays,
    resolve_checkpoint,
)
from efficientnet_tf.weights.variants import infer_preset

__all__ = [
    "KerasSource",
    "Published",
    "cache_dir",
    "fetch",
    "from_keras_applications",
    "from_tf_checkpoint",
    "infer_preset",
    "infer_scope",
    "load_keras_applications_arrays",
    "load_pretrained",
    "load_tf_arrays",
    "published_weights",
    "read_keras_file",
    "resolve_checkpoint",
]

