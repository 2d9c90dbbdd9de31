"""Class activation maps of any of our classifiers: CAM and Grad-CAM heat maps, overlays, grids.

* CAM (Zhou et al., CVPR 2016): for a network ending in global average pooling and one dense
  layer, the map of class c is sum_k W[k, c] * A_k(x, y), A the last feature map and W the
  classifier kernel. It is min-max normalized per image.
* Grad-CAM (Selvaraju et al., ICCV 2017): ReLU(sum_k alpha_k * A_k(x, y)) with alpha_k the
  spatial mean of d logit_c / d A_k; works for any feature layer. It is divided by its maximum.

For our EfficientNets (``top_activation`` -> average pooling -> dropout -> ``predictions``) the
two agree up to the ReLU and the normalization: alpha_k = W[k, c] / (H * W). Maps are
computed at the feature map's resolution and resized bilinearly to the input's.

    result = class_activation_maps(model, images)              # images: float RGB 0..255
    write_cam_grid("cam.png", [CamColumn("teacher", images, result)])

Gradients use ``tf.GradientTape``, so this module needs the TensorFlow backend.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

METHODS = ("gradcam", "cam")
DEFAULT_FEATURE_LAYER = "top_activation"


@dataclasses.dataclass
class CamResult:
    """Heat maps of one model for a batch of images."""

    heatmaps: np.ndarray  # [B, H, W] in [0, 1] at the input size (or raw: [B, h, w])
    classes: np.ndarray  # [B] the class each map explains
    probabilities: np.ndarray  # [B, C] softmax of the model's logits


@dataclasses.dataclass
class CamColumn:
    """One column of a comparison grid: a model's inputs (float 0..255) and its maps."""

    title: str
    images: np.ndarray  # [B, H, W, 3]
    result: CamResult


def feature_layer(model: keras.Model, name: str | None = None) -> keras.layers.Layer:
    """The layer whose output is explained: ``name``, else ``top_activation``, else the last
    layer with a 4-D output."""
    if name is not None:
        try:
            return model.get_layer(name)
        except ValueError:
            raise ValueError(f"the model {model.name!r} has no layer {name!r}; pick one of its "
                             "layers with a 4-D output (e.g. top_activation, block6d)") from None
    names = [layer.name for layer in model.layers]
    if DEFAULT_FEATURE_LAYER in names:
        return model.get_layer(DEFAULT_FEATURE_LAYER)
    for layer in reversed(model.layers):
        if not isinstance(layer, keras.layers.InputLayer) and len(layer.output.shape) == 4:
            return layer
    raise ValueError(f"the model {model.name!r} has no layer with a 4-D (spatial) output")


def classifier_layer(model: keras.Model) -> keras.layers.Dense:
    """The final dense layer (``predictions``); its pre-activation outputs are the logits."""
    last = model.layers[-1]
    if not isinstance(last, keras.layers.Dense):
        raise ValueError(f"the model {model.name!r} ends in {type(last).__name__} "
                         f"{last.name!r}; class activation maps need a final Dense classifier "
                         "(build it with include_top=True)")
    return last


def _logits(classifier: keras.layers.Dense, pooled: tf.Tensor) -> tf.Tensor:
    """The classifier's pre-activation output (softmax models too), in float32."""
    kernel = tf.cast(tf.convert_to_tensor(classifier.kernel), tf.float32)
    logits = tf.matmul(tf.cast(pooled, tf.float32), kernel)
    if classifier.use_bias:
        logits += tf.cast(tf.convert_to_tensor(classifier.bias), tf.float32)
    return logits


def _target_classes(classes: int | Sequence[int] | None, logits: np.ndarray) -> np.ndarray:
    batch, num_classes = logits.shape
    if classes is None:
        target = logits.argmax(axis=1)
    else:
        target = np.broadcast_to(np.asarray(classes, np.int64), (batch,)).copy()
    if target.min() < 0 or target.max() >= num_classes:
        raise ValueError(f"class indices must lie in [0, {num_classes}), got {target.tolist()}")
    return target.astype(np.int64)


def cam_from_features(features: np.ndarray, kernel: np.ndarray, classes: np.ndarray
                      ) -> np.ndarray:
    """Raw CAM [B, h, w]: features [B, h, w, K] weighted by the classifier columns [K, C]."""
    if features.shape[-1] != kernel.shape[0]:
        raise ValueError(f"CAM needs the feature map that is pooled into the classifier: it has "
                         f"{features.shape[-1]} channels, the classifier takes {kernel.shape[0]}; "
                         "use method='gradcam' for other layers")
    return np.einsum("bhwk,kb->bhw", features, kernel[:, classes])


def gradcam_from_gradients(features: np.ndarray, gradients: np.ndarray) -> np.ndarray:
    """Raw Grad-CAM [B, h, w]: ReLU of the feature channels weighted by their mean gradient."""
    weights = gradients.mean(axis=(1, 2), keepdims=True)
    return np.maximum((features * weights).sum(axis=-1), 0.0)


def normalize_maps(maps: np.ndarray, size: tuple[int, int], method: str) -> np.ndarray:
    """Raw maps [B, h, w] -> [B, H, W] in [0, 1]: bilinear resize, then min-max (CAM) or
    division by the maximum (Grad-CAM, already >= 0); constant maps become 0."""
    resized = tf.image.resize(maps[..., None].astype(np.float32), size, "bilinear")
    resized = resized.numpy()[..., 0]
    low = resized.min(axis=(1, 2), keepdims=True) if method == "cam" else 0.0
    shifted = resized - low
    high = shifted.max(axis=(1, 2), keepdims=True)
    return np.divide(shifted, high, out=np.zeros_like(shifted), where=high > 1e-12)


def class_activation_maps(model: keras.Model, images, *, method: str = "gradcam",
                          classes: int | Sequence[int] | None = None,
                          layer_name: str | None = None, normalize: bool = True) -> CamResult:
    """Heat maps of ``model`` for ``images`` (float [B, H, W, 3] in 0..255, as the model takes).

    ``classes``: the class to explain per image (an int for all, a sequence, or None for each
    image's top prediction). ``layer_name``: the feature layer (default ``top_activation``;
    CAM allows only the layer pooled into the classifier). ``normalize=False`` returns the raw
    maps at the feature resolution.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; use one of {METHODS}")
    features_layer = feature_layer(model, layer_name)
    classifier = classifier_layer(model)
    probe = keras.Model(model.inputs, [features_layer.output, classifier.input])
    images = tf.convert_to_tensor(images, tf.float32)
    with tf.GradientTape() as tape:
        features, pooled = probe(images, training=False)
        tape.watch(features)
        logits = _logits(classifier, pooled)
        target = _target_classes(classes, logits.numpy())
        score = tf.reduce_sum(tf.gather(logits, target, axis=1, batch_dims=1))
    features_np = tf.cast(features, tf.float32).numpy()
    if method == "cam":
        kernel = tf.cast(tf.convert_to_tensor(classifier.kernel), tf.float32).numpy()
        maps = cam_from_features(features_np, kernel, target)
    else:
        gradients = tape.gradient(score, features)
        if gradients is None:
            raise ValueError(f"the logits do not depend on layer {features_layer.name!r}")
        maps = gradcam_from_gradients(features_np, tf.cast(gradients, tf.float32).numpy())
    if normalize:
        maps = normalize_maps(maps, tuple(images.shape[1:3]), method)
    return CamResult(heatmaps=maps, classes=target,
                     probabilities=tf.nn.softmax(logits).numpy())


def overlay(image: np.ndarray, heatmap: np.ndarray, alpha: float = 0.45,
            colormap: str = "jet") -> np.ndarray:
    """uint8 [H, W, 3]: the image (0..255) blended with the colored heat map ([0, 1])."""
    from matplotlib import colormaps

    colors = colormaps[colormap](np.clip(heatmap, 0.0, 1.0))[..., :3] * 255.0
    blended = (1.0 - alpha) * np.asarray(image, np.float32) + alpha * colors
    return np.clip(np.round(blended), 0, 255).astype(np.uint8)


def _caption(result: CamResult, row: int, class_names: Sequence[str] | None) -> str:
    c = int(result.classes[row])
    name = class_names[c] if class_names is not None else str(c)
    return f"{name} {result.probabilities[row, c]:.2f}"


def write_cam_grid(path: str, columns: Sequence[CamColumn], *,
                   class_names: Sequence[str] | None = None,
                   labels: Sequence[int] | None = None, alpha: float = 0.45) -> str:
    """PNG grid (temp name, then rename): one row per image, the input then one overlay per
    column (model), each captioned with the explained class and its probability."""
    from noisy_student.plots import new_figure, write_png

    if not columns:
        raise ValueError("write_cam_grid needs at least one column")
    rows = len(columns[0].images)
    if any(len(c.images) != rows or len(c.result.heatmaps) != rows for c in columns):
        raise ValueError("every column needs the same number of images and heat maps")
    fig = new_figure(2.1 * (len(columns) + 1), 2.2 * rows)
    axes = fig.subplots(rows, len(columns) + 1, squeeze=False)
    for row in range(rows):
        axes[row, 0].imshow(np.clip(columns[0].images[row], 0, 255).astype(np.uint8))
        if labels is not None:
            label = int(labels[row])
            axes[row, 0].set_title(class_names[label] if class_names else f"label {label}",
                                   fontsize=8)
        for col, column in enumerate(columns, start=1):
            axes[row, col].imshow(overlay(column.images[row], column.result.heatmaps[row],
                                          alpha))
            axes[row, col].set_title(_caption(column.result, row, class_names), fontsize=8)
    for col, column in enumerate(columns, start=1):
        axes[0, col].set_title(f"{column.title}\n{axes[0, col].get_title()}", fontsize=8)
    axes[0, 0].set_title(f"input\n{axes[0, 0].get_title()}".strip(), fontsize=8)
    for ax in axes.flat:
        ax.axis("off")
    return write_png(fig, path)
