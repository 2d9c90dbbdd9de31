"""Batched RandAugment for small images, the same policy as
``noisy_student.data.randaugment.distort_image_with_randaugment``: images of a batch
[B, H, W, 3] are grouped by the op they drew (tf.dynamic_partition), each op runs once on its
group, and tf.dynamic_stitch puts them back. At 32 px this replaces one `tf.switch_case` dispatch
per image and layer with 16 dispatches per batch and layer. Large images keep the per-image path.
Each batched op equals the per-image op applied image by image (tests/test_randaugment.py).
"""

from __future__ import annotations

import math

import tensorflow as tf

from noisy_student.data.randaugment import (
    CHANNEL_OFFSETS,
    FILL_VALUE,
    LUMA_WEIGHTS,
    OP_NAMES,
    as_seed,
    blend,
    brightness,
    call_op,
    draw_layer,
    equalized,
    invert,
    op_argument,
    posterize,
    randaugment_policy,
    solarize,
    solarize_add,
    to_float,
    uniform_ints,
)


def _grayscale_batch(images: tf.Tensor) -> tf.Tensor:
    """`_grayscale` for [B, H, W, 3]: [B, H, W, 1] float32 holding integers."""
    weights = tf.constant([[LUMA_WEIGHTS[0]], [LUMA_WEIGHTS[1]], [LUMA_WEIGHTS[2]]], tf.float32)
    shape = tf.shape(images)
    weighted = tf.matmul(tf.reshape(to_float(images), [-1, 3]), weights) + 32768.0
    return tf.reshape(tf.floor(weighted / 65536.0), tf.concat([shape[:3], [1]], 0))


def _per_image(values: tf.Tensor) -> tf.Tensor:
    """[B] -> [B, 1, 1, 1], to broadcast a per-image value over pixels."""
    return values[:, tf.newaxis, tf.newaxis, tf.newaxis]


def auto_contrast_batch(images: tf.Tensor) -> tf.Tensor:
    lo = to_float(tf.reduce_min(images, axis=[1, 2], keepdims=True))
    hi = to_float(tf.reduce_max(images, axis=[1, 2], keepdims=True))
    stretch = hi > lo
    lo = tf.where(stretch, lo, 0.0)
    span = tf.where(stretch, hi - lo, 255.0)
    return tf.cast((to_float(images) - lo) * 255.0 / span, tf.uint8)


def equalize_batch(images: tf.Tensor) -> tf.Tensor:
    """`equalize` per image and channel, with one bincount for the whole batch."""
    batch = tf.shape(images)[0]
    offsets = tf.reshape(tf.range(batch) * 768, [-1, 1, 1, 1])
    index = tf.cast(images, tf.int32) + CHANNEL_OFFSETS + offsets
    hist = tf.reshape(
        tf.math.bincount(tf.reshape(index, [-1]), minlength=768 * batch, maxlength=768 * batch),
        [-1, 256],
    )  # [B * 3, 256]
    return equalized(hist, index)


def color_batch(images: tf.Tensor, factor) -> tf.Tensor:
    return blend(_grayscale_batch(images), images, factor)


def contrast_batch(images: tf.Tensor, factor) -> tf.Tensor:
    gray = _grayscale_batch(images)
    total = tf.reduce_sum(tf.cast(gray, tf.float64), axis=[1, 2, 3], keepdims=True)
    pixels = tf.cast(tf.reduce_prod(tf.shape(gray)[1:]), tf.float64)
    mean = tf.floor(total / pixels + 0.5)
    return blend(tf.cast(mean, tf.float32), images, factor)


def sharpness_batch(images: tf.Tensor, factor) -> tf.Tensor:
    pixels = to_float(images)
    kernel = tf.constant([[1.0, 1.0, 1.0], [1.0, 5.0, 1.0], [1.0, 1.0, 1.0]])
    kernel = tf.tile(kernel[:, :, tf.newaxis, tf.newaxis], [1, 1, 3, 1])
    # SAME, then the interior: with oneDNN a VALID convolution of an empty batch (an op that
    # no image drew) keeps its input's height and width, and the concat below would fail.
    summed = tf.nn.depthwise_conv2d(pixels, kernel, [1, 1, 1, 1], "SAME")[:, 1:-1, 1:-1]
    inner = tf.floor(summed / 13.0 + 0.5)
    middle = tf.concat([pixels[:, 1:-1, :1], inner, pixels[:, 1:-1, -1:]], axis=2)
    smooth = tf.concat([pixels[:, :1], middle, pixels[:, -1:]], axis=1)
    return blend(smooth, images, factor)


def _transform_batch(images: tf.Tensor, transforms: tf.Tensor, replace) -> tf.Tensor:
    """`_transform` with one [8] transform per image ([B, 8])."""
    out = tf.raw_ops.ImageProjectiveTransformV3(
        images=images,
        transforms=tf.cast(transforms, tf.float32),
        output_shape=tf.shape(images)[1:3],
        fill_value=tf.cast(replace, tf.float32),
        interpolation="NEAREST",
        fill_mode="CONSTANT",
    )
    return tf.ensure_shape(out, images.shape)


def rotate_batch(images: tf.Tensor, degrees: tf.Tensor, replace=FILL_VALUE) -> tf.Tensor:
    """`rotate` with per-image angles [B]."""
    radians = tf.cast(degrees, tf.float32) * (math.pi / 180.0)
    cos, sin = tf.cos(radians), tf.sin(radians)
    size = tf.cast(tf.shape(images)[1:3], tf.float32)
    cy, cx = (size[0] - 1.0) / 2.0, (size[1] - 1.0) / 2.0
    zero = tf.zeros_like(cos)
    transforms = tf.stack(
        [cos, -sin, cx - cos * cx + sin * cy, sin, cos, cy - sin * cx - cos * cy, zero, zero],
        axis=1,
    )
    return _transform_batch(images, transforms, replace)


def _affine_batch(images: tf.Tensor, values: tf.Tensor, slot: int, replace) -> tf.Tensor:
    """Identity transform with transform[slot] = values (per image)."""
    values = tf.cast(values, tf.float32)
    one, zero = tf.ones_like(values), tf.zeros_like(values)
    row = [one, zero, zero, zero, one, zero, zero, zero]
    row[slot] = values
    return _transform_batch(images, tf.stack(row, axis=1), replace)


def shear_x_batch(images: tf.Tensor, level: tf.Tensor, replace=FILL_VALUE) -> tf.Tensor:
    return _affine_batch(images, level, 1, replace)


def shear_y_batch(images: tf.Tensor, level: tf.Tensor, replace=FILL_VALUE) -> tf.Tensor:
    return _affine_batch(images, level, 3, replace)


def _whole_pixels(pixels: tf.Tensor) -> tf.Tensor:
    """floor(pixels + 0.5), the whole-pixel shift of `_shift`; an exact nearest sample."""
    return tf.floor(tf.cast(pixels, tf.float64) + 0.5)


def translate_x_batch(images: tf.Tensor, pixels: tf.Tensor, replace=FILL_VALUE) -> tf.Tensor:
    return _affine_batch(images, _whole_pixels(pixels), 2, replace)


def translate_y_batch(images: tf.Tensor, pixels: tf.Tensor, replace=FILL_VALUE) -> tf.Tensor:
    return _affine_batch(images, _whole_pixels(pixels), 5, replace)


def cutout_batch(images: tf.Tensor, pad_size, centers: tf.Tensor, replace=FILL_VALUE):
    """`cutout` with one centre (cy, cx) per image ([B, 2])."""
    centers = tf.cast(centers, tf.int32)
    pad = tf.maximum(tf.cast(pad_size, tf.int32), 0)
    shape = tf.shape(images)
    rows = tf.range(shape[1])[tf.newaxis, :]
    cols = tf.range(shape[2])[tf.newaxis, :]
    cy, cx = centers[:, 0:1], centers[:, 1:2]
    in_rows = tf.logical_and(rows >= cy - pad, rows < cy + pad)  # [B, H]
    in_cols = tf.logical_and(cols >= cx - pad, cols < cx + pad)  # [B, W]
    mask = tf.logical_and(in_rows[:, :, tf.newaxis], in_cols[:, tf.newaxis, :])
    mask = tf.cast(mask[..., tf.newaxis], tf.uint8)
    return images + mask * (tf.cast(replace, tf.uint8) - images)  # modulo-256: exact


def apply_op_batch(
    index: int, images: tf.Tensor, magnitude, translate_const, cutout_const, signs, centers
) -> tf.Tensor:
    """`_apply_op` on a batch: signs [B] (+-1), centers [B, 2]; same level-to-argument rules."""
    name = OP_NAMES[index]
    signs = tf.cast(signs, tf.float64)
    argument = op_argument(name, magnitude, translate_const, cutout_const, signs)
    ops = {
        "AutoContrast": auto_contrast_batch, "Equalize": equalize_batch, "Invert": invert,
        "Rotate": rotate_batch, "Posterize": posterize, "Solarize": solarize,
        "Color": color_batch, "Contrast": contrast_batch, "Brightness": brightness,
        "Sharpness": sharpness_batch, "ShearX": shear_x_batch, "ShearY": shear_y_batch,
        "TranslateX": translate_x_batch, "TranslateY": translate_y_batch,
        "Cutout": lambda x, size: cutout_batch(x, size, centers),
        "SolarizeAdd": solarize_add,
    }
    return call_op(ops, name, images, argument)


def _distort_batch_layer(images: tf.Tensor, constants, seed) -> tf.Tensor:
    """One layer on a batch: every image draws its own op, sign and cutout centre from
    ``seed``; images are grouped by op and each op runs once, on the images that drew it."""
    shape = tf.shape(images)
    num_ops = len(OP_NAMES)
    op_index, signs, centers = draw_layer(seed, shape[1:3], shape[0])
    positions = tf.dynamic_partition(tf.range(shape[0]), op_index, num_ops)
    groups = tf.dynamic_partition(images, op_index, num_ops)
    group_signs = tf.dynamic_partition(signs, op_index, num_ops)
    group_centers = tf.dynamic_partition(centers, op_index, num_ops)
    results = [apply_op_batch(i, groups[i], *constants, group_signs[i], group_centers[i])
               for i in range(num_ops)]
    return tf.ensure_shape(tf.dynamic_stitch(positions, results), images.shape)


distort_batch_with_randaugment = randaugment_policy(
    4, _distort_batch_layer, "distort_batch_with_randaugment",
    """`distort_image_with_randaugment` on a batch [B, H, W, 3] uint8: every image draws its own
    op, sign and cutout centre per layer (same distribution). Images are grouped by op and each
    op runs once per layer on its group, so the cost per image is a fraction of one op dispatch:
    meant for small images (e.g. 32 px), where dispatch dominates.""")


def cutout_batch_random(images: tf.Tensor, pad_size, seed, replace=FILL_VALUE) -> tf.Tensor:
    """`cutout` with a centre drawn per image, uniform over the pixels (stateless `seed`)."""
    shape = tf.shape(images)
    hw = tf.broadcast_to(shape[1:3][tf.newaxis], tf.stack([shape[0], 2]))
    return cutout_batch(images, pad_size, uniform_ints(hw, as_seed(seed)), replace)
