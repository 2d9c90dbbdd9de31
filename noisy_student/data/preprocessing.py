"""Image preprocessing (TF ops) from encoded bytes to float images in 0..255.

Train (reference recipe): Inception crop sampled on the encoded image's shape
(``sample_distorted_bounding_box``: object covered >= 0.1, aspect 3/4..4/3, area 0.08..1,
10 attempts; JPEGs are decoded only inside the crop window), falling back to the eval center
crop when the sample is the whole image; bicubic resize; random left-right flip; optional
RandAugment on uint8 pixels. Eval: center crop of side ``res / (res + crop_padding) * min(h, w)``,
bicubic resize. The small-image variant (32x32 data such as CIFAR/SVHN) uses no Inception crop:
train = optional RandAugment, reflect-pad 4, random crop, flip; eval = the decoded image.

Every random choice is drawn from a stateless seed (shape [2]); pass one for reproducible
output (RandAugment included), or leave it out for a fresh random one per call.
The model normalizes pixels itself, so outputs stay in 0..255.
"""

from __future__ import annotations

from collections.abc import Callable

import tensorflow as tf

CROP_PADDING = 32
SMALL_IMAGE_PAD = 4
MIN_OBJECT_COVERED = 0.1
ASPECT_RATIO_RANGE = (3.0 / 4.0, 4.0 / 3.0)
AREA_RANGE = (0.08, 1.0)
MAX_ATTEMPTS = 10

Window = tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]  # offset_y, offset_x, height, width


def decode_image(image_bytes: tf.Tensor) -> tf.Tensor:
    """Decodes JPEG/PNG/GIF/BMP bytes to uint8 [H, W, 3] (grayscale is expanded to RGB)."""
    image = tf.io.decode_image(image_bytes, channels=3, dtype=tf.uint8, expand_animations=False)
    return tf.ensure_shape(image, [None, None, 3])


def center_crop_window(shape: tf.Tensor, image_size: int,
                       crop_padding: int = CROP_PADDING) -> Window:
    """Square center window of side floor(image_size / (image_size + pad) * min(h, w)).

    Integer arithmetic gives the exact floor; offsets round the margin up, as in the reference.
    """
    height, width = shape[0], shape[1]
    side = (image_size * tf.minimum(height, width)) // (image_size + crop_padding)
    side = tf.maximum(side, 1)
    return (height - side + 1) // 2, (width - side + 1) // 2, side, side


def inception_crop_window(shape: tf.Tensor, seed: tf.Tensor, image_size: int) -> Window:
    """Samples an Inception-style crop; falls back to the center crop for the whole image."""
    begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
        image_size=shape,
        bounding_boxes=tf.constant([0.0, 0.0, 1.0, 1.0], shape=[1, 1, 4]),
        seed=seed,
        min_object_covered=MIN_OBJECT_COVERED,
        aspect_ratio_range=ASPECT_RATIO_RANGE,
        area_range=AREA_RANGE,
        max_attempts=MAX_ATTEMPTS,
        use_image_if_no_bounding_boxes=True,
    )
    sampled = (begin[0], begin[1], size[0], size[1])
    whole = tf.logical_and(tf.equal(size[0], shape[0]), tf.equal(size[1], shape[1]))
    window = tf.cond(whole, lambda: tf.stack(center_crop_window(shape, image_size)),
                     lambda: tf.stack(sampled))
    return window[0], window[1], window[2], window[3]


def decode_and_crop(image_bytes: tf.Tensor, window_fn: Callable[[tf.Tensor], Window]) -> tf.Tensor:
    """Decodes only a window of the image: ``window_fn(shape [h, w, c]) -> window``.

    JPEGs are cropped while decoding (shape read from the header); other formats are decoded,
    then sliced.
    """
    image_bytes = tf.convert_to_tensor(image_bytes, tf.string)

    def jpeg() -> tf.Tensor:
        window = tf.stack(window_fn(tf.image.extract_jpeg_shape(image_bytes)))
        return tf.image.decode_and_crop_jpeg(image_bytes, window, channels=3)

    def other() -> tf.Tensor:
        image = decode_image(image_bytes)
        offset_y, offset_x, height, width = window_fn(tf.shape(image))
        return image[offset_y:offset_y + height, offset_x:offset_x + width, :]

    return tf.ensure_shape(tf.cond(tf.io.is_jpeg(image_bytes), jpeg, other), [None, None, 3])


def _resize(image: tf.Tensor, image_size: int) -> tf.Tensor:
    """Bicubic resize to [size, size, 3] float32, clipped to 0..255 (bicubic overshoots)."""
    image = tf.image.resize(image, [image_size, image_size], method="bicubic")
    return tf.clip_by_value(image, 0.0, 255.0)


def _resize_if_needed(image: tf.Tensor, image_size: int) -> tf.Tensor:
    shape = tf.shape(image)
    same = tf.logical_and(tf.equal(shape[0], image_size), tf.equal(shape[1], image_size))
    image = tf.cond(same, lambda: tf.cast(image, tf.float32), lambda: _resize(image, image_size))
    return tf.ensure_shape(image, [image_size, image_size, 3])


def _randaugment(image: tf.Tensor, num_layers: int, magnitude: float, *, small_image: bool,
                 seeds: tf.Tensor) -> tf.Tensor:
    """RandAugment on uint8 pixels (imported lazily: only needed when it is switched on).

    Translate and cutout sizes scale with the image side; for the small-image variant they are
    side // 8 and an extra cutout of side // 4 follows, as in the reference's 32x32 recipe.
    """
    from noisy_student.data import randaugment

    size = int(image.shape[0])
    translate, cutout = randaugment.randaugment_constants(size, small_image=small_image)
    pixels = tf.saturate_cast(tf.round(image), tf.uint8)
    pixels = randaugment.distort_image_with_randaugment(
        pixels, num_layers, magnitude, translate_const=translate, cutout_const=cutout,
        seed=seeds[0])
    if small_image:
        pixels = randaugment.cutout(pixels, size // 4, seed=seeds[1])
    return tf.cast(pixels, tf.float32)


def _split_seed(seed: tf.Tensor | None) -> tf.Tensor:
    """Four independent stateless seeds (shape [4, 2]: crop, flip, RandAugment, cutout) from
    ``seed`` or from a random draw."""
    if seed is None:
        seed = tf.random.uniform([2], maxval=2**62, dtype=tf.int64)
    return tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=4)


def preprocess_for_train(image_bytes: tf.Tensor, image_size: int, *, small_image: bool = False,
                         randaug_num_layers: int = 0, randaug_magnitude: float = 10.0,
                         dtype: tf.DType = tf.float32,
                         seed: tf.Tensor | None = None) -> tf.Tensor:
    """Encoded image -> augmented [image_size, image_size, 3] image in 0..255 of ``dtype``."""
    seeds = _split_seed(seed)
    if small_image:
        image = _resize_if_needed(decode_image(image_bytes), image_size)
        if randaug_num_layers > 0:
            image = _randaugment(image, randaug_num_layers, randaug_magnitude,
                                 small_image=True, seeds=seeds[2:])
        pad = SMALL_IMAGE_PAD
        image = tf.pad(image, [[pad, pad], [pad, pad], [0, 0]], mode="REFLECT")
        image = tf.image.stateless_random_crop(image, [image_size, image_size, 3], seeds[0])
    else:
        image = decode_and_crop(
            image_bytes, lambda shape: inception_crop_window(shape, seeds[0], image_size))
        image = _resize(image, image_size)
    image = tf.image.stateless_random_flip_left_right(image, seeds[1])
    if randaug_num_layers > 0 and not small_image:
        image = _randaugment(image, randaug_num_layers, randaug_magnitude, small_image=False,
                             seeds=seeds[2:])
    image = tf.ensure_shape(image, [image_size, image_size, 3])
    return tf.cast(image, dtype)


def preprocess_for_eval(image_bytes: tf.Tensor, image_size: int, *, small_image: bool = False,
                        crop_padding: int = CROP_PADDING,
                        dtype: tf.DType = tf.float32) -> tf.Tensor:
    """Encoded image -> center-cropped [image_size, image_size, 3] image in 0..255."""
    if small_image:
        image = _resize_if_needed(decode_image(image_bytes), image_size)
    else:
        image = decode_and_crop(
            image_bytes, lambda shape: center_crop_window(shape, image_size, crop_padding))
        image = _resize(image, image_size)
    image = tf.ensure_shape(image, [image_size, image_size, 3])
    return tf.cast(image, dtype)
