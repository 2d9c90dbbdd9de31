"""RandAugment (Cubuk et al., 2019) on core TensorFlow ops, as used by Noisy Student.

Works inside `tf.data` and under `tf.function`: every random draw is a TF op, so each image gets
its own ops and signs, and a `seed` makes the result reproducible (stateless RNG).

Semantics follow the reference (tensorflow/tpu `efficientnet/autoaugment.py` and its copy in
google-research/noisystudent `randaugment.py`):
- N layers; each picks one of the 16 ops uniformly and always applies it (the reference draws a
  per-op probability but none of the 16 ops takes it, so the chosen op is applied with
  probability 1; we do the same).
- Fixed magnitude M on a scale whose maximum level is 10; larger M extrapolates linearly
  (see `_apply_op` for each op's level-to-argument rule). Rotate, shear and translate get a
  random sign.
- Affine ops use nearest-neighbour sampling and fill uncovered pixels with 128; Cutout fills 128.

Where the TF reference meant "the equivalent of PIL" but differs from PIL, we follow Pillow
(and the tests check against Pillow):
- Color/Contrast grayscale is Pillow's ITU-R 601-2 luma with fixed-point rounding (the reference's
  `tf.image.rgb_to_grayscale` differs by at most 1 gray level).
- Contrast blends towards the mean gray level of the image, as Pillow does. The reference computes
  sum(histogram)/256, i.e. (number of pixels)/256, a constant that depends only on the image size
  (196 at 224 px, 4 at 32 px); we treat that as a bug.
- Sharpness rounds the SMOOTH-filtered image to nearest (the reference truncates); border pixels
  keep their original values in both.
- AutoContrast computes floor((v - lo) * 255 / (hi - lo)) exactly (reference: float32, Pillow:
  double; each can land one level lower where the exact value is an integer).
- Translate shifts by whole pixels, floor(pixels + 0.5), as Pillow's nearest sampling does; the
  reference's projective transform rounds half away from zero, which differs only for
  half-integer shifts at the image edge.
- Posterize clamps bits to [1, 8]: the same result as the reference's clamped bit shifts.

Speed (CPU, tf.data): one `tf.switch_case` per layer, so only the chosen op runs; full-image
`tf.where`/`tf.gather` are avoided where arithmetic does the same job (they cost several times an
elementwise op on CPU); Equalize builds all three histograms with one bincount.
"""

from __future__ import annotations

import math

import tensorflow as tf

MAX_LEVEL = 10.0
FILL_VALUE = 128

# Reference constants at 224 px (tensorflow/tpu RandAugment hparams).
REFERENCE_IMAGE_SIZE = 224
REFERENCE_TRANSLATE_CONST = 100.0
REFERENCE_CUTOUT_CONST = 40.0

OP_NAMES = (
    "AutoContrast",
    "Equalize",
    "Invert",
    "Rotate",
    "Posterize",
    "Solarize",
    "Color",
    "Contrast",
    "Brightness",
    "Sharpness",
    "ShearX",
    "ShearY",
    "TranslateX",
    "TranslateY",
    "Cutout",
    "SolarizeAdd",
)

# Pillow's RGB -> L weights in 16-bit fixed point (299/587/114 per mille, rounded).
_LUMA_WEIGHTS = (19595, 38470, 7471)
_CHANNEL_OFFSETS = (0, 256, 512)


def randaugment_constants(image_size: int, *, small_images: bool = False) -> tuple[float, float]:
    """(translate_const, cutout_const) for square images of side `image_size`.

    Default: the reference's 100 and 40 at 224 px, scaled in proportion to the side.
    `small_images=True`: the Noisy Student rule for 32x32 data, `image_size // 8` for both.
    """
    if image_size <= 0:
        raise ValueError(f"image_size must be positive, got {image_size}")
    if small_images:
        return float(image_size // 8), float(image_size // 8)
    scale = image_size / REFERENCE_IMAGE_SIZE
    return REFERENCE_TRANSLATE_CONST * scale, REFERENCE_CUTOUT_CONST * scale


# ---------------------------------------------------------------------------------------------
# Helpers. Elementwise arithmetic is used instead of tf.where/tf.gather where possible: on CPU a
# full-image tf.where or gather costs 5-10x an elementwise op (see benchmarks/input_pipeline.py).


def _to_float(image: tf.Tensor) -> tf.Tensor:
    return tf.cast(image, tf.float32)


def _blend(degenerate: tf.Tensor, image: tf.Tensor, factor) -> tf.Tensor:
    """Pillow's Image.blend: degenerate + factor * (image - degenerate), clipped, truncated."""
    degenerate = _to_float(degenerate)
    factor = tf.cast(factor, tf.float32)
    blended = degenerate + factor * (_to_float(image) - degenerate)
    return tf.cast(tf.clip_by_value(blended, 0.0, 255.0), tf.uint8)


def _grayscale(image: tf.Tensor) -> tf.Tensor:
    """Pillow's RGB -> L conversion (fixed-point luma), HxWx1 float32 holding integers.

    All partial sums are integers below 2**24, so float32 arithmetic is exact.
    """
    weights = tf.constant([[_LUMA_WEIGHTS[0]], [_LUMA_WEIGHTS[1]], [_LUMA_WEIGHTS[2]]], tf.float32)
    shape = tf.shape(image)
    weighted = tf.matmul(tf.reshape(_to_float(image), [-1, 3]), weights) + 32768.0
    return tf.reshape(tf.floor(weighted / 65536.0), [shape[0], shape[1], 1])


def _transform(image: tf.Tensor, transform, replace) -> tf.Tensor:
    """Projective transform, nearest sampling, constant fill.

    `transform` = [a0, a1, a2, b0, b1, b2, c0, c1] maps output pixel (x, y) to input
    ((a0 x + a1 y + a2) / k, (b0 x + b1 y + b2) / k), k = c0 x + c1 y + 1, in pixel indices.
    """
    transform = tf.reshape(tf.cast(tf.stack(transform), tf.float32), [1, 8])
    out = tf.raw_ops.ImageProjectiveTransformV3(
        images=image[tf.newaxis],
        transforms=transform,
        output_shape=tf.shape(image)[:2],
        fill_value=tf.cast(replace, tf.float32),
        interpolation="NEAREST",
        fill_mode="CONSTANT",
    )[0]
    return tf.ensure_shape(out, image.shape)


def _shift(image: tf.Tensor, pixels, axis: int, replace) -> tf.Tensor:
    """out[i] = image[i + s] along `axis` (fill where out of range), s = floor(pixels + 0.5)."""
    length = tf.shape(image)[axis]
    s = tf.cast(tf.floor(tf.cast(pixels, tf.float64) + 0.5), tf.int32)
    start = tf.clip_by_value(s, 0, length)
    stop = tf.clip_by_value(length + s, 0, length)
    before = tf.clip_by_value(-s, 0, length)
    after = length - before - (stop - start)
    kept = image[:, start:stop] if axis == 1 else image[start:stop]
    other = tf.shape(image)[1 - axis]

    def fill(n):
        shape = tf.stack([other, n, 3]) if axis == 1 else tf.stack([n, other, 3])
        return tf.fill(shape, tf.cast(replace, tf.uint8))

    return tf.ensure_shape(tf.concat([fill(before), kept, fill(after)], axis), image.shape)


# ---------------------------------------------------------------------------------------------
# The 16 operations. Each takes and returns a uint8 HxWx3 tensor.


def auto_contrast(image: tf.Tensor) -> tf.Tensor:
    """Pillow ImageOps.autocontrast (cutoff 0): stretch each channel's [min, max] to [0, 255].

    Computed exactly as floor((v - lo) * 255 / (hi - lo)); Pillow evaluates the same line in
    double precision and lands one level lower where the exact value is an integer.
    """
    lo = _to_float(tf.reduce_min(image, axis=[0, 1]))
    hi = _to_float(tf.reduce_max(image, axis=[0, 1]))
    stretch = hi > lo
    lo = tf.where(stretch, lo, 0.0)  # constant channels stay as they are
    span = tf.where(stretch, hi - lo, 255.0)
    # Integers below 2**24 and a correctly rounded division: the floor is exact.
    return tf.cast((_to_float(image) - lo) * 255.0 / span, tf.uint8)


def equalize(image: tf.Tensor) -> tf.Tensor:
    """Pillow ImageOps.equalize: per-channel histogram equalization (one vectorized histogram)."""
    index = tf.cast(image, tf.int32) + _CHANNEL_OFFSETS
    hist = tf.reshape(
        tf.math.bincount(tf.reshape(index, [-1]), minlength=768, maxlength=768), [3, 256]
    )
    values = tf.range(256, dtype=tf.int32)
    last_value = tf.reduce_max(tf.where(hist > 0, values, -1), axis=1)
    last_count = tf.gather(hist, last_value, batch_dims=1)
    step = (tf.reduce_sum(hist, axis=1) - last_count) // 255
    safe_step = tf.maximum(step, 1)[:, tf.newaxis]
    below = tf.cumsum(hist, axis=1, exclusive=True)
    lut = tf.clip_by_value((below + safe_step // 2) // safe_step, 0, 255)
    lut = tf.where(step[:, tf.newaxis] > 0, lut, values[tf.newaxis, :])
    return tf.gather(tf.reshape(tf.cast(lut, tf.uint8), [-1]), index)


def invert(image: tf.Tensor) -> tf.Tensor:
    """255 - pixel."""
    return tf.constant(255, tf.uint8) - image


def posterize(image: tf.Tensor, bits) -> tf.Tensor:
    """Pillow ImageOps.posterize: keep the top `bits` bits (clamped to [1, 8])."""
    bits = tf.clip_by_value(tf.cast(bits, tf.int32), 1, 8)
    mask = tf.cast(tf.bitwise.left_shift(255, 8 - bits) % 256, tf.uint8)
    return tf.bitwise.bitwise_and(image, mask)


def solarize(image: tf.Tensor, threshold=128) -> tf.Tensor:
    """Pillow ImageOps.solarize: invert pixels >= threshold (255 - v == v ^ 255)."""
    threshold = tf.clip_by_value(tf.cast(threshold, tf.int32), 0, 256)
    any_inverted = tf.cast(tf.where(threshold <= 255, 255, 0), tf.uint8)
    above = tf.cast(image >= tf.cast(tf.minimum(threshold, 255), tf.uint8), tf.uint8)
    return tf.bitwise.bitwise_xor(image, above * any_inverted)


def solarize_add(image: tf.Tensor, addition, threshold=128) -> tf.Tensor:
    """Add `addition` to pixels below `threshold`, saturating at 0 and 255."""
    addition = tf.clip_by_value(tf.cast(addition, tf.int32), -255, 255)
    # clip(v, lo, hi) + addition stays in [0, 255]; uint8 wrap-around makes negative additions work.
    lo = tf.cast(tf.maximum(0, -addition), tf.uint8)
    hi = tf.cast(tf.minimum(255, 255 - addition), tf.uint8)
    added = tf.clip_by_value(image, lo, hi) + tf.cast(addition % 256, tf.uint8)
    threshold = tf.clip_by_value(tf.cast(threshold, tf.int32), 0, 256)
    below = tf.cast(image < tf.cast(tf.minimum(threshold, 255), tf.uint8), tf.uint8)
    below = tf.bitwise.bitwise_or(below, tf.cast(tf.where(threshold > 255, 1, 0), tf.uint8))
    return image + below * (added - image)  # modulo-256 arithmetic: exact


def color(image: tf.Tensor, factor) -> tf.Tensor:
    """Pillow ImageEnhance.Color: blend the grayscale image with the image."""
    return _blend(_grayscale(image), image, factor)


def contrast(image: tf.Tensor, factor) -> tf.Tensor:
    """Pillow ImageEnhance.Contrast: blend a constant image of the mean gray level (rounded)."""
    gray = _grayscale(image)
    total = tf.reduce_sum(tf.cast(gray, tf.float64))
    mean = tf.floor(total / tf.cast(tf.size(gray), tf.float64) + 0.5)
    return _blend(tf.cast(mean, tf.float32), image, factor)


def brightness(image: tf.Tensor, factor) -> tf.Tensor:
    """Pillow ImageEnhance.Brightness: blend with black."""
    return _blend(tf.zeros([], tf.float32), image, factor)


def sharpness(image: tf.Tensor, factor) -> tf.Tensor:
    """Pillow ImageEnhance.Sharpness: blend the SMOOTH-filtered image (border pixels unchanged)."""
    pixels = _to_float(image)
    kernel = tf.constant([[1.0, 1.0, 1.0], [1.0, 5.0, 1.0], [1.0, 1.0, 1.0]])
    kernel = tf.tile(kernel[:, :, tf.newaxis, tf.newaxis], [1, 1, 3, 1])
    summed = tf.nn.depthwise_conv2d(pixels[tf.newaxis], kernel, [1, 1, 1, 1], "VALID")[0]
    inner = tf.floor(summed / 13.0 + 0.5)  # integer sums: no ties, so this is exact rounding
    middle = tf.concat([pixels[1:-1, :1], inner, pixels[1:-1, -1:]], axis=1)
    smooth = tf.concat([pixels[:1], middle, pixels[-1:]], axis=0)
    return _blend(smooth, image, factor)


def rotate(image: tf.Tensor, degrees, replace=FILL_VALUE) -> tf.Tensor:
    """Rotate counter-clockwise by `degrees` about the image centre (as Pillow Image.rotate)."""
    radians = tf.cast(degrees, tf.float32) * (math.pi / 180.0)
    cos, sin = tf.cos(radians), tf.sin(radians)
    size = tf.cast(tf.shape(image)[:2], tf.float32)
    cy, cx = (size[0] - 1.0) / 2.0, (size[1] - 1.0) / 2.0
    # Input = centre + R(angle) (output - centre), with y pointing down.
    return _transform(
        image,
        [cos, -sin, cx - cos * cx + sin * cy, sin, cos, cy - sin * cx - cos * cy, 0.0, 0.0],
        replace,
    )


def shear_x(image: tf.Tensor, level, replace=FILL_VALUE) -> tf.Tensor:
    """Output (x, y) samples input (x + level * y, y)."""
    level = tf.cast(level, tf.float32)
    return _transform(image, [1.0, level, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0], replace)


def shear_y(image: tf.Tensor, level, replace=FILL_VALUE) -> tf.Tensor:
    """Output (x, y) samples input (x, level * x + y)."""
    level = tf.cast(level, tf.float32)
    return _transform(image, [1.0, 0.0, 0.0, level, 1.0, 0.0, 0.0, 0.0], replace)


def translate_x(image: tf.Tensor, pixels, replace=FILL_VALUE) -> tf.Tensor:
    """Output (x, y) samples input (x + pixels, y), nearest: content moves left for pixels > 0."""
    return _shift(image, pixels, 1, replace)


def translate_y(image: tf.Tensor, pixels, replace=FILL_VALUE) -> tf.Tensor:
    """Output (x, y) samples input (x, y + pixels), nearest: content moves up for pixels > 0."""
    return _shift(image, pixels, 0, replace)


def cutout(image: tf.Tensor, pad_size, replace=FILL_VALUE, *, center=None, seed=None) -> tf.Tensor:
    """Fill rows [cy - pad, cy + pad) x cols [cx - pad, cx + pad) (clipped) with `replace`.

    `center` = (cy, cx); if None it is drawn uniformly over the image (stateless if `seed`).
    """
    shape = tf.shape(image)
    if center is None:
        center = _uniform_ints(shape[:2], _as_seed(seed))
    cy, cx = tf.unstack(tf.cast(center, tf.int32))
    pad = tf.maximum(tf.cast(pad_size, tf.int32), 0)
    y0, y1 = tf.clip_by_value(cy - pad, 0, shape[0]), tf.clip_by_value(cy + pad, 0, shape[0])
    x0, x1 = tf.clip_by_value(cx - pad, 0, shape[1]), tf.clip_by_value(cx + pad, 0, shape[1])
    band = image[y0:y1]
    patch = tf.fill(tf.stack([y1 - y0, x1 - x0, 3]), tf.cast(replace, tf.uint8))
    band = tf.concat([band[:, :x0], patch, band[:, x1:]], axis=1)
    return tf.ensure_shape(tf.concat([image[:y0], band, image[y1:]], axis=0), image.shape)


# ---------------------------------------------------------------------------------------------
# Random policy


def _as_seed(seed) -> tf.Tensor:
    """A shape-[2] int64 seed for stateless RNG; None draws one from the stateful RNG."""
    if seed is None:
        return tf.random.uniform([2], maxval=2**62, dtype=tf.int64)
    if isinstance(seed, int):
        return tf.constant([seed, 0], tf.int64)
    seed = tf.cast(tf.convert_to_tensor(seed), tf.int64)
    if seed.shape.rank == 0:
        return tf.stack([seed, tf.constant(0, tf.int64)])
    return tf.ensure_shape(seed, [2])


def _uniform_ints(maxvals: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """Independent uniform ints in [0, maxvals[i])."""
    u = tf.random.stateless_uniform(tf.shape(maxvals), seed=seed)
    values = tf.cast(u * tf.cast(maxvals, tf.float32), tf.int32)
    return tf.minimum(values, maxvals - 1)


def op_argument(name: str, magnitude, translate_const, cutout_const, sign):
    """The reference's level-to-argument rule of op `name` at `magnitude` (level / 10, float64),
    shared by the per-image and batched paths; None for ops without an argument. `sign` (+-1,
    a scalar or one per image) applies to rotate, shear and translate."""
    level = magnitude / MAX_LEVEL
    rules = {
        "Rotate": lambda: sign * level * 30.0,
        "Posterize": lambda: tf.cast(level * 4.0, tf.int32),
        "Solarize": lambda: tf.cast(level * 256.0, tf.int32),
        "ShearX": lambda: sign * level * 0.3,
        "ShearY": lambda: sign * level * 0.3,
        "TranslateX": lambda: sign * level * translate_const,
        "TranslateY": lambda: sign * level * translate_const,
        "Cutout": lambda: tf.cast(level * cutout_const, tf.int32),
        "SolarizeAdd": lambda: tf.cast(level * 110.0, tf.int32),
    }
    for enhance_op in ("Color", "Contrast", "Brightness", "Sharpness"):
        rules[enhance_op] = lambda: level * 1.8 + 0.1
    if name not in OP_NAMES:
        raise ValueError(f"unknown RandAugment op {name!r}")
    rule = rules.get(name)
    return None if rule is None else rule()


def _call_op(ops: dict, name: str, images: tf.Tensor, argument) -> tf.Tensor:
    op = ops[name]
    return op(images) if argument is None else op(images, argument)


def _apply_op(
    index: int, image: tf.Tensor, magnitude, translate_const, cutout_const, sign, center
) -> tf.Tensor:
    """Apply op OP_NAMES[index] at `magnitude` to one image."""
    name = OP_NAMES[index]
    argument = op_argument(name, magnitude, translate_const, cutout_const, sign)
    ops = {
        "AutoContrast": auto_contrast, "Equalize": equalize, "Invert": invert,
        "Rotate": rotate, "Posterize": posterize, "Solarize": solarize, "Color": color,
        "Contrast": contrast, "Brightness": brightness, "Sharpness": sharpness,
        "ShearX": shear_x, "ShearY": shear_y, "TranslateX": translate_x,
        "TranslateY": translate_y, "Cutout": lambda x, size: cutout(x, size, center=center),
        "SolarizeAdd": solarize_add,
    }
    return _call_op(ops, name, image, argument)


@tf.autograph.experimental.do_not_convert  # no tensor-dependent Python control flow here
def distort_image_with_randaugment(
    image: tf.Tensor,
    num_layers: int,
    magnitude: float,
    *,
    translate_const: float | None = None,
    cutout_const: float | None = None,
    seed=None,
) -> tf.Tensor:
    """Apply `num_layers` RandAugment ops, each uniform over the 16, at magnitude `magnitude`.

    Args:
      image: uint8 HxWx3 tensor.
      num_layers: N, a Python int >= 0 (0 returns the image unchanged).
      magnitude: M >= 0 (reference scale: max level 10, larger values extrapolate linearly).
      translate_const / cutout_const: translate pixels and cutout half-size at level 10.
        None: the reference's 100 / 40 scaled to min(height, width) / 224 (see
        `randaugment_constants`, which also gives the 32 px Noisy Student values).
      seed: None (stateful RNG), an int, or a shape-[2] int tensor for deterministic results
        (e.g. one per element from `tf.data.Dataset.random()`).

    Returns:
      uint8 tensor of the same shape.
    """
    if not isinstance(num_layers, int) or num_layers < 0:
        raise ValueError(f"num_layers must be a Python int >= 0, got {num_layers!r}")
    if isinstance(magnitude, (int, float)) and magnitude < 0:
        raise ValueError(f"magnitude must be >= 0, got {magnitude}")
    image = tf.convert_to_tensor(image)
    if image.dtype != tf.uint8:
        raise TypeError(
            f"distort_image_with_randaugment expects a uint8 image, got {image.dtype.name}; "
            "convert with tf.cast(tf.clip_by_value(image, 0, 255), tf.uint8) first"
        )
    if image.shape.rank is not None and (image.shape.rank != 3 or image.shape[-1] not in (3, None)):
        raise ValueError(f"expected an HxWx3 image, got shape {image.shape}")
    if num_layers == 0:
        return image

    magnitude = tf.cast(magnitude, tf.float64)
    size = tf.cast(tf.reduce_min(tf.shape(image)[:2]), tf.float64)
    if translate_const is None:
        translate_const = size * (REFERENCE_TRANSLATE_CONST / REFERENCE_IMAGE_SIZE)
    if cutout_const is None:
        cutout_const = size * (REFERENCE_CUTOUT_CONST / REFERENCE_IMAGE_SIZE)
    translate_const = tf.cast(translate_const, tf.float64)
    cutout_const = tf.cast(cutout_const, tf.float64)

    layer_seeds = tf.random.experimental.stateless_split(_as_seed(seed), num_layers)
    hw = tf.shape(image)[:2]
    for layer in range(num_layers):
        # One draw per layer: op index, sign, cutout centre (y, x).
        u = tf.random.stateless_uniform([4], seed=layer_seeds[layer], dtype=tf.float64)
        op_index = tf.minimum(tf.cast(u[0] * len(OP_NAMES), tf.int32), len(OP_NAMES) - 1)
        sign = tf.where(u[1] < 0.5, tf.constant(-1.0, tf.float64), 1.0)
        center = tf.minimum(tf.cast(u[2:] * tf.cast(hw, tf.float64), tf.int32), hw - 1)

        def branch(i: int, current=image, sign=sign, center=center):
            return lambda: _apply_op(
                i, current, magnitude, translate_const, cutout_const, sign, center
            )

        image = tf.switch_case(op_index, [branch(i) for i in range(len(OP_NAMES))])
        image = tf.ensure_shape(image, [None, None, 3])
    return image


# ---------------------------------------------------------------------------------------------
# Batched RandAugment for small images: images of a batch [B, H, W, 3] are grouped by the op
# they drew (tf.dynamic_partition), each op runs once on its group, and tf.dynamic_stitch puts
# them back. At 32 px this replaces one `tf.switch_case` dispatch per image and layer with 16
# dispatches per batch and layer. Large images keep the per-image path above. Each batched op
# equals the per-image op applied image by image (tests/test_randaugment.py).


def _grayscale_batch(images: tf.Tensor) -> tf.Tensor:
    """`_grayscale` for [B, H, W, 3]: [B, H, W, 1] float32 holding integers."""
    weights = tf.constant([[_LUMA_WEIGHTS[0]], [_LUMA_WEIGHTS[1]], [_LUMA_WEIGHTS[2]]], tf.float32)
    shape = tf.shape(images)
    weighted = tf.matmul(tf.reshape(_to_float(images), [-1, 3]), weights) + 32768.0
    return tf.reshape(tf.floor(weighted / 65536.0), tf.concat([shape[:3], [1]], 0))


def _per_image(values: tf.Tensor) -> tf.Tensor:
    """[B] -> [B, 1, 1, 1], to broadcast a per-image value over pixels."""
    return values[:, tf.newaxis, tf.newaxis, tf.newaxis]


def auto_contrast_batch(images: tf.Tensor) -> tf.Tensor:
    lo = _to_float(tf.reduce_min(images, axis=[1, 2], keepdims=True))
    hi = _to_float(tf.reduce_max(images, axis=[1, 2], keepdims=True))
    stretch = hi > lo
    lo = tf.where(stretch, lo, 0.0)
    span = tf.where(stretch, hi - lo, 255.0)
    return tf.cast((_to_float(images) - lo) * 255.0 / span, tf.uint8)


def equalize_batch(images: tf.Tensor) -> tf.Tensor:
    """`equalize` per image and channel, with one bincount for the whole batch."""
    batch = tf.shape(images)[0]
    offsets = tf.reshape(tf.range(batch) * 768, [-1, 1, 1, 1])
    index = tf.cast(images, tf.int32) + _CHANNEL_OFFSETS + offsets
    hist = tf.reshape(
        tf.math.bincount(tf.reshape(index, [-1]), minlength=768 * batch, maxlength=768 * batch),
        [-1, 256],
    )  # [B * 3, 256]
    values = tf.range(256, dtype=tf.int32)
    last_value = tf.reduce_max(tf.where(hist > 0, values, -1), axis=1)
    last_count = tf.gather(hist, tf.maximum(last_value, 0), batch_dims=1)
    step = (tf.reduce_sum(hist, axis=1) - last_count) // 255
    safe_step = tf.maximum(step, 1)[:, tf.newaxis]
    below = tf.cumsum(hist, axis=1, exclusive=True)
    lut = tf.clip_by_value((below + safe_step // 2) // safe_step, 0, 255)
    lut = tf.where(step[:, tf.newaxis] > 0, lut, values[tf.newaxis, :])
    return tf.gather(tf.reshape(tf.cast(lut, tf.uint8), [-1]), index)


def color_batch(images: tf.Tensor, factor) -> tf.Tensor:
    return _blend(_grayscale_batch(images), images, factor)


def contrast_batch(images: tf.Tensor, factor) -> tf.Tensor:
    gray = _grayscale_batch(images)
    total = tf.reduce_sum(tf.cast(gray, tf.float64), axis=[1, 2, 3], keepdims=True)
    pixels = tf.cast(tf.reduce_prod(tf.shape(gray)[1:]), tf.float64)
    mean = tf.floor(total / pixels + 0.5)
    return _blend(tf.cast(mean, tf.float32), images, factor)


def sharpness_batch(images: tf.Tensor, factor) -> tf.Tensor:
    pixels = _to_float(images)
    kernel = tf.constant([[1.0, 1.0, 1.0], [1.0, 5.0, 1.0], [1.0, 1.0, 1.0]])
    kernel = tf.tile(kernel[:, :, tf.newaxis, tf.newaxis], [1, 1, 3, 1])
    # SAME, then the interior: with oneDNN a VALID convolution of an empty batch (an op that
    # no image drew) keeps its input's height and width, and the concat below would fail.
    summed = tf.nn.depthwise_conv2d(pixels, kernel, [1, 1, 1, 1], "SAME")[:, 1:-1, 1:-1]
    inner = tf.floor(summed / 13.0 + 0.5)
    middle = tf.concat([pixels[:, 1:-1, :1], inner, pixels[:, 1:-1, -1:]], axis=2)
    smooth = tf.concat([pixels[:, :1], middle, pixels[:, -1:]], axis=1)
    return _blend(smooth, images, factor)


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
    return _call_op(ops, name, images, argument)


def draw_layer_batch(seed, batch_size, hw) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Per-image draws for one layer, as in `distort_image_with_randaugment`: op indices [B]
    (uniform over the 16), signs [B] (+-1, float64), cutout centres [B, 2] (uniform pixels)."""
    u = tf.random.stateless_uniform(tf.stack([batch_size, 4]), seed=seed, dtype=tf.float64)
    op_index = tf.minimum(tf.cast(u[:, 0] * len(OP_NAMES), tf.int32), len(OP_NAMES) - 1)
    signs = tf.where(u[:, 1] < 0.5, tf.constant(-1.0, tf.float64), 1.0)
    hw = tf.cast(hw, tf.int32)
    centers = tf.minimum(tf.cast(u[:, 2:] * tf.cast(hw, tf.float64), tf.int32), hw - 1)
    return op_index, signs, centers


@tf.autograph.experimental.do_not_convert  # no tensor-dependent Python control flow here
def distort_batch_with_randaugment(
    images: tf.Tensor,
    num_layers: int,
    magnitude: float,
    *,
    translate_const: float | None = None,
    cutout_const: float | None = None,
    seed=None,
) -> tf.Tensor:
    """`distort_image_with_randaugment` on a batch [B, H, W, 3] uint8: every image draws its own
    op, sign and cutout centre per layer (same distribution). Images are grouped by op and each
    op runs once per layer on its group, so the cost per image is a fraction of one op dispatch:
    meant for small images (e.g. 32 px), where dispatch dominates."""
    if not isinstance(num_layers, int) or num_layers < 0:
        raise ValueError(f"num_layers must be a Python int >= 0, got {num_layers!r}")
    if isinstance(magnitude, (int, float)) and magnitude < 0:
        raise ValueError(f"magnitude must be >= 0, got {magnitude}")
    images = tf.convert_to_tensor(images)
    if images.dtype != tf.uint8:
        raise TypeError(f"distort_batch_with_randaugment expects uint8 images, got "
                        f"{images.dtype.name}")
    if images.shape.rank is not None and (images.shape.rank != 4
                                          or images.shape[-1] not in (3, None)):
        raise ValueError(f"expected a BxHxWx3 batch, got shape {images.shape}")
    if num_layers == 0:
        return images

    magnitude = tf.cast(magnitude, tf.float64)
    shape = tf.shape(images)
    size = tf.cast(tf.reduce_min(shape[1:3]), tf.float64)
    if translate_const is None:
        translate_const = size * (REFERENCE_TRANSLATE_CONST / REFERENCE_IMAGE_SIZE)
    if cutout_const is None:
        cutout_const = size * (REFERENCE_CUTOUT_CONST / REFERENCE_IMAGE_SIZE)
    translate_const = tf.cast(translate_const, tf.float64)
    cutout_const = tf.cast(cutout_const, tf.float64)

    layer_seeds = tf.random.experimental.stateless_split(_as_seed(seed), num_layers)
    num_ops = len(OP_NAMES)
    for layer in range(num_layers):
        op_index, signs, centers = draw_layer_batch(layer_seeds[layer], shape[0], shape[1:3])
        # Group the images by their op: each op runs once, on the images that drew it.
        positions = tf.dynamic_partition(tf.range(shape[0]), op_index, num_ops)
        groups = tf.dynamic_partition(images, op_index, num_ops)
        group_signs = tf.dynamic_partition(signs, op_index, num_ops)
        group_centers = tf.dynamic_partition(centers, op_index, num_ops)
        results = [
            apply_op_batch(i, groups[i], magnitude, translate_const, cutout_const,
                           group_signs[i], group_centers[i])
            for i in range(num_ops)
        ]
        images = tf.ensure_shape(tf.dynamic_stitch(positions, results), images.shape)
    return images


def cutout_batch_random(images: tf.Tensor, pad_size, seed, replace=FILL_VALUE) -> tf.Tensor:
    """`cutout` with a centre drawn per image, uniform over the pixels (stateless `seed`)."""
    shape = tf.shape(images)
    hw = tf.broadcast_to(shape[1:3][tf.newaxis], tf.stack([shape[0], 2]))
    return cutout_batch(images, pad_size, _uniform_ints(hw, _as_seed(seed)), replace)
