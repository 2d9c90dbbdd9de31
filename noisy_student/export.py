"""SavedModel export for TF Serving / TFLite: one signature for encoded image bytes, one for
float tensors.

Signatures (both return `probabilities` [B, C] float32 and `classes` [B] int64):
  - `serving_default` / `serving_images`: `images` float32 [B, S, S, 3], RGB 0..255.
  - `serving_bytes`: `image_bytes` string [B] (JPEG/PNG/BMP/GIF), decoded and center-cropped
    with the evaluation preprocessing of the model's resolution.
"""

from __future__ import annotations

import os
import shutil

import keras
import tensorflow as tf

from noisy_student.atomic_io import remove_stale_temps, temp_path
from noisy_student.data.preprocessing import preprocess_for_eval


def _outputs_logits(model: keras.Model) -> bool:
    activation = getattr(model.layers[-1], "activation", None)
    return activation is None or getattr(activation, "__name__", "") == "linear"


class _Serving(tf.Module):
    def __init__(self, model: keras.Model, image_size: int, small_image: bool):
        super().__init__()
        self.model = model
        self.image_size = image_size
        self.small_image = small_image
        self.logits = _outputs_logits(model)

    def _classify(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        outputs = tf.cast(self.model(images, training=False), tf.float32)
        probabilities = tf.nn.softmax(outputs) if self.logits else outputs
        return {"probabilities": probabilities, "classes": tf.argmax(probabilities, axis=-1)}

    def images_fn(self):
        size = self.image_size
        spec = tf.TensorSpec([None, size, size, 3], tf.float32, name="images")
        return tf.function(lambda images: self._classify(images), input_signature=[spec])

    def bytes_fn(self):
        def classify_bytes(image_bytes):
            images = tf.map_fn(
                lambda data: preprocess_for_eval(
                    data, self.image_size, small_image=self.small_image
                ),
                image_bytes,
                fn_output_signature=tf.TensorSpec([self.image_size, self.image_size, 3]),
            )
            return self._classify(images)

        spec = tf.TensorSpec([None], tf.string, name="image_bytes")
        return tf.function(classify_bytes, input_signature=[spec])


def export_saved_model(
    model: keras.Model, export_dir: str, *, image_size: int, small_image: bool = False
) -> str:
    """Writes a SavedModel with bytes and float signatures to `export_dir`, atomically (a temp
    directory renamed at the end; an existing export is replaced only once the new one is
    complete). Returns `export_dir`."""
    module = _Serving(model, image_size, small_image)
    images_fn, bytes_fn = module.images_fn(), module.bytes_fn()
    signatures = {
        "serving_default": images_fn,
        "serving_images": images_fn,
        "serving_bytes": bytes_fn,
    }
    export_dir = os.path.abspath(export_dir)
    parent = os.path.dirname(export_dir)
    os.makedirs(parent, exist_ok=True)
    remove_stale_temps(parent, recursive=False, prefix=f".{os.path.basename(export_dir)}.tmp-")
    staging = temp_path(export_dir)
    try:
        tf.saved_model.save(module, staging, signatures=signatures)
        if os.path.exists(export_dir):
            old = temp_path(export_dir, ".old")
            os.rename(export_dir, old)
            os.rename(staging, export_dir)
            shutil.rmtree(old)
        else:
            os.rename(staging, export_dir)
    finally:
        if os.path.exists(staging):
            shutil.rmtree(staging)
    return export_dir
