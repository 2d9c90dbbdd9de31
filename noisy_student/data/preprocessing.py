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


def _randaugment(image: tf.Tensor, num_layers: int, magnitude: float, *, small_images: bool,
                 seeds: tf.Tensor) -> tf.Tensor:
    """RandAugment on uint8 pixels (imported lazily: only needed when it is switched on).

    Translate and cutout sizes scale with the image side; for the small-image variant they are
    side // 8 and an extra cutout of side // 4 follows, as in the reference's 32x32 recipe.
    """
    from noisy_student.data import randaugment

    size = int(image.shape[0])
    translate, cutout = randaugment.randaugment_constants(size, small_images=small_images)
    pixels = tf.saturate_cast(tf.round(image), tf.uint8)
    pixels = randaugment.distort_image_with_randaugment(
        pixels, num_layers, magnitude, translate_const=translate, cutout_const=cutout,
        seed=seeds[0])
    if small_images:
        pixels = randaugment.cutout(pixels, size // 4, seed=seeds[1])
    return tf.cast(pixels, tf.float32)


def _split_seed(seed: tf.Tensor | None) -> tf.Tensor:
    """Four independent stateless seeds (shape [4, 2]: crop, flip, RandAugment, cutout) from
    ``seed`` or from a random draw."""
    if seed is None:
        seed = tf.random.uniform([2], maxval=2**62, dtype=tf.int64)
    return tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=4)


def preprocess_for_train(image_bytes: tf.Tensor, image_size: int, *, small_images: bool = False,
                         randaug_num_layers: int = 0, randaug_magnitude: float = 10.0,
                         dtype: tf.DType = tf.float32,
                         seed: tf.Tensor | None = None) -> tf.Tensor:
    """Encoded image -> augmented [image_size, image_size, 3] image in 0..255 of ``dtype``."""
    seeds = _split_seed(seed)
    if small_images:
        image = _resize_if_needed(decode_image(image_bytes), image_size)
        if randaug_num_layers > 0:
            image = _randaugment(image, randaug_num_layers, randaug_magnitude,
                                 small_images=True, seeds=seeds[2:])
        pad = SMALL_IMAGE_PAD
        image = tf.pad(image, [[pad, pad], [pad, pad], [0, 0]], mode="REFLECT")
        image = tf.image.stateless_random_crop(image, [image_size, image_size, 3], seeds[0])
    else:
        image = decode_and_crop(
            image_bytes, lambda shape: inception_crop_window(shape, seeds[0], image_size))
        image = _resize(image, image_size)
    image = tf.image.stateless_random_flip_left_right(image, seeds[1])
    if randaug_num_layers > 0 and not small_images:
        image = _randaugment(image, randaug_num_layers, randaug_magnitude, small_images=False,
                             seeds=seeds[2:])
    image = tf.ensure_shape(image, [image_size, image_size, 3])
    return tf.cast(image, dtype)


def decode_small_for_train(image_bytes: tf.Tensor, image_size: int) -> tf.Tensor:
    """Per-image half of the batched small-image train path: encoded image -> uint8
    [image_size, image_size, 3] (decoded, resized if needed, rounded as RandAugment expects).
    Batch these and finish with `augment_small_batch_for_train`."""
    image = _resize_if_needed(decode_image(image_bytes), image_size)
    return tf.saturate_cast(tf.round(image), tf.uint8)


def augment_small_batch_for_train(images: tf.Tensor, image_size: int, *,
                                  randaug_num_layers: int, randaug_magnitude: float,
                                  dtype: tf.DType = tf.float32,
                                  seed: tf.Tensor | None = None) -> tf.Tensor:
    """The small-image train augmentation of `preprocess_for_train` on a batch: uint8
    [B, S, S, 3] from `decode_small_for_train` -> RandAugment (every image its own ops, signs and
    cutout centres) + the extra side // 4 cutout, reflect-pad 4, random crop and flip per image,
    in that order, as the per-image path. One stateless ``seed`` (shape [2]) per batch, or None
    for a random one."""
    from noisy_student.data import randaugment, randaugment_batch

    images = tf.ensure_shape(tf.convert_to_tensor(images), [None, image_size, image_size, 3])
    seeds = _split_seed(seed)  # crop, flip, RandAugment, cutout
    if randaug_num_layers > 0:
        translate, cutout = randaugment.randaugment_constants(image_size, small_images=True)
        images = randaugment_batch.distort_batch_with_randaugment(
            images, randaug_num_layers, randaug_magnitude, translate_const=translate,
            cutout_const=cutout, seed=seeds[2])
        images = randaugment_batch.cutout_batch_random(images, image_size // 4, seeds[3])
    pad = SMALL_IMAGE_PAD
    images = tf.pad(images, [[0, 0], [pad, pad], [pad, pad], [0, 0]], mode="REFLECT")
    batch = tf.shape(images)[0]
    # Crop offsets uniform in [0, 2 * pad] per image and axis, as stateless_random_crop draws.
    offsets = tf.random.stateless_uniform(tf.stack([batch, 2]), seeds[0], minval=0,
                                          maxval=2 * pad + 1, dtype=tf.int32)
    window = tf.range(image_size)[tf.newaxis, :]
    images = tf.gather(images, offsets[:, :1] + window, axis=1, batch_dims=1)
    images = tf.gather(images, offsets[:, 1:] + window, axis=2, batch_dims=1)
    images = tf.image.stateless_random_flip_left_right(images, seeds[1])  # per image
    images = tf.ensure_shape(images, [None, image_size, image_size, 3])
    return tf.cast(images, dtype)


def preprocess_for_eval(image_bytes: tf.Tensor, image_size: int, *, small_images: bool = False,
                        crop_padding: int = CROP_PADDING,
                        dtype: tf.DType = tf.float32) -> tf.Tensor:
    """Encoded image -> center-cropped [image_size, image_size, 3] image in 0..255."""
    if small_images:
        image = _resize_if_needed(decode_image(image_bytes), image_size)
    else:
        image = decode_and_crop(
            image_bytes, lambda shape: center_crop_window(shape, image_size, crop_padding))
        image = _resize(image, image_size)
    image = tf.ensure_shape(image, [image_size, image_size, 3])
    return tf.cast(image, dtype)
