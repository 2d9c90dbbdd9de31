"""SavedModel export for TF Serving: one signature for encoded image bytes, one for float
tensors. (TFLite converts from the Keras model instead, see ``noisy_student.export.deploy``:
converting this SavedModel gives NaN outputs on TF 2.21.)

Signatures (listed with every artifact in ``noisy_student.export.artifacts``; all return
`probabilities` [B, C] float32 and `classes` [B] int64):
  - `serving_default` / `serving_images`: `images` float32 [B, S, S, 3], RGB 0..255. Any other
    rank, size or channel count, a NaN/infinite pixel, or a pixel outside [-1, 256)
    (`PIXEL_RANGE`: 0..255 with room for rounding; a 0..1 or a garbage image would otherwise be
    classified confidently) is an InvalidArgument error that says what was expected (never a
    process abort).
  - `serving_bytes`: `image_bytes` string [B] (JPEG/PNG/BMP/GIF), each decoded on its own and
    center-cropped with the evaluation preprocessing of the model's resolution. An image that
    cannot be decoded is an InvalidArgument error naming its index in the batch.
  - `serving_bytes_status`: like `serving_bytes`, but one bad image does not fail the batch:
    it also returns `valid` [B] bool, and a bad image gets zero probabilities and class -1.
  - `serving_images_status`: the same for float images: an image with a NaN, infinite or
    out-of-range pixel is marked (valid False, class -1, zero probabilities) instead of failing
    the batch; a wrong shape still fails it. (Decoded bytes are 0..255 by construction, so
    for `serving_bytes_status` only undecodable images can be bad.)
"""

from __future__ import annotations

import os

import keras
import tensorflow as tf

from noisy_student.atomic_io import atomic_output, remove_stale_temps
from noisy_student.data.bad_data import try_map
from noisy_student.data.preprocessing import preprocess_for_eval
from noisy_student.export import artifacts
from noisy_student.training.checks import model_outputs_logits

PIXEL_RANGE = (-1.0, 256.0)  # [low, high) of the float pixels serving_images accepts


def _in_range(images: tf.Tensor) -> tf.Tensor:
    """Per pixel: finite and inside PIXEL_RANGE (NaN compares false, so it is outside)."""
    low, high = PIXEL_RANGE
    return tf.logical_and(images >= low, images < high)


class _Serving(tf.Module):
    def __init__(self, model: keras.Model, image_size: int, small_images: bool):
        super().__init__()
        self.model = model
        self.image_size = image_size
        self.small_images = small_images
        self.logits = model_outputs_logits(model)

    def _classify(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        def run():
            outputs = tf.cast(self.model(images, training=False), tf.float32)
            return tf.nn.softmax(outputs) if self.logits else outputs

        def empty():  # oneDNN convolutions mis-shape an empty batch (TF 2.21)
            return tf.zeros([0, self.model.output_shape[-1]], tf.float32)

        probabilities = tf.cond(tf.shape(images)[0] > 0, run, empty)
        return {"probabilities": probabilities, "classes": tf.argmax(probabilities, axis=-1)}

    def _checked_shape(self, images: tf.Tensor) -> tf.Tensor:
        """`images` with the static shape [B, S, S, 3] once rank, size and channels are checked
        (InvalidArgumentError otherwise)."""
        size = self.image_size
        shape = tf.shape(images)
        padded = tf.concat([shape, [-1, -1, -1, -1]], axis=0)[:4]  # indexable at any rank
        ok = tf.reduce_all([tf.equal(tf.size(shape), 4), tf.equal(padded[1], size),
                            tf.equal(padded[2], size), tf.equal(padded[3], 3)])
        message = tf.strings.format(
            "images must be a float32 batch of shape [batch, {}, {}, 3] (RGB, 0..255); got "
            "shape {}", (size, size, shape))
        with tf.control_dependencies([tf.debugging.Assert(ok, [message])]):
            return tf.ensure_shape(tf.identity(images), [None, size, size, 3])

    def _checked(self, images: tf.Tensor) -> tf.Tensor:
        """`images` once the shape is checked and every pixel is finite and in PIXEL_RANGE
        (InvalidArgumentError otherwise)."""
        images = tf.debugging.assert_all_finite(
            self._checked_shape(images),
            "images hold NaN or infinite pixels; send RGB values in 0..255")
        low, high = PIXEL_RANGE
        message = tf.strings.format(
            "images must hold RGB pixel values in [{}, {}) (0..255 images, not 0..1 or "
            "normalized ones); got values from {} to {}",
            (low, high, tf.reduce_min(images), tf.reduce_max(images)))
        inside = tf.reduce_all(_in_range(images))
        with tf.control_dependencies([tf.debugging.Assert(inside, [message])]):
            return tf.identity(images)

    def images_fn(self):
        spec = tf.TensorSpec(None, tf.float32, name="images")  # any shape: checked inside
        return tf.function(lambda images: self._classify(self._checked(images)),
                           input_signature=[spec])

    def _with_status(self, images: tf.Tensor, valid: tf.Tensor) -> dict[str, tf.Tensor]:
        """Classifies `images` where `valid`; the others get zero probabilities and class -1
        (they are replaced by zeros first, so no NaN reaches the model)."""
        safe = tf.where(valid[:, None, None, None], images, 0.0)
        outputs = self._classify(safe)
        probabilities = tf.where(valid[:, None], outputs["probabilities"], 0.0)
        classes = tf.where(valid, outputs["classes"], tf.constant(-1, tf.int64))
        return {"probabilities": probabilities, "classes": classes, "valid": valid}

    def images_status_fn(self):
        def classify(images):
            images = self._checked_shape(images)  # a malformed batch is still an error
            return self._with_status(images, tf.reduce_all(_in_range(images), axis=[1, 2, 3]))

        spec = tf.TensorSpec(None, tf.float32, name="images")
        return tf.function(classify, input_signature=[spec])

    def _decode_all(self, image_bytes: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """(images [B, S, S, 3], valid [B]): each image decoded on its own."""
        size = self.image_size

        def preprocess(data):
            return preprocess_for_eval(data, size, small_images=self.small_images)

        return tf.map_fn(
            lambda data: try_map(data, preprocess, log_warning=False).get_single_element(),
            image_bytes,
            fn_output_signature=(tf.TensorSpec([size, size, 3]), tf.TensorSpec([], tf.bool)),
        )

    def bytes_fn(self):
        def classify_bytes(image_bytes):
            images, valid = self._decode_all(image_bytes)
            bad = tf.reshape(tf.where(tf.logical_not(valid)), [-1])
            message = tf.strings.format(
                "image_bytes{} of {} cannot be decoded as JPEG/PNG/GIF/BMP (indices in the "
                "batch; the serving_bytes_status signature classifies the others)",
                (bad, tf.size(valid)))
            with tf.control_dependencies([tf.debugging.Assert(tf.size(bad) == 0, [message])]):
                return self._classify(tf.identity(images))

        spec = tf.TensorSpec([None], tf.string, name="image_bytes")
        return tf.function(classify_bytes, input_signature=[spec])

    def bytes_status_fn(self):
        def classify_bytes(image_bytes):
            return self._with_status(*self._decode_all(image_bytes))

        spec = tf.TensorSpec([None], tf.string, name="image_bytes")
        return tf.function(classify_bytes, input_signature=[spec])


def export_saved_model(
    model: keras.Model, export_dir: str, *, image_size: int, small_images: bool = False
) -> str:
    """Writes a SavedModel with bytes and float signatures to `export_dir`, atomically (a temp
    directory renamed at the end; an existing export is replaced only once the new one is
    complete; the temp directories of killed exports are removed first). Returns `export_dir`."""
    module = _Serving(model, image_size, small_images)
    images_fn = module.images_fn()
    functions = {
        "serving_default": images_fn,
        "serving_images": images_fn,
        "serving_bytes": module.bytes_fn(),
        "serving_bytes_status": module.bytes_status_fn(),
        "serving_images_status": module.images_status_fn(),
    }
    signatures = {name: functions[name] for name in artifacts.SIGNATURES}  # the one list
    export_dir = os.path.abspath(export_dir)
    parent = os.path.dirname(export_dir)
    os.makedirs(parent, exist_ok=True)
    remove_stale_temps(parent, recursive=False, prefix=f".{os.path.basename(export_dir)}.tmp-")
    with atomic_output(export_dir) as staging:
        tf.saved_model.save(module, staging, signatures=signatures)
    return export_dir
