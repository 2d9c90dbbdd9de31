"""RandAugment (Cubuk et al., 2019) on core TensorFlow ops, as used by Noisy Student: the ops
on one image and the per-image policy (the batched policy for small images is
``noisy_student.data.randaugment_batch``).

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
from collections.abc import Callable

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
LUMA_WEIGHTS = (19595, 38470, 7471)
CHANNEL_OFFSETS = (0, 256, 512)


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


def to_float(image: tf.Tensor) -> tf.Tensor:
    return tf.cast(image, tf.float32)


def blend(degenerate: tf.Tensor, image: tf.Tensor, factor) -> tf.Tensor:
    """Pillow's Image.blend: degenerate + factor * (image - degenerate), clipped, truncated."""
    degenerate = to_float(degenerate)
    factor = tf.cast(factor, tf.float32)
    blended = degenerate + factor * (to_float(image) - degenerate)
    return tf.cast(tf.clip_by_value(blended, 0.0, 255.0), tf.uint8)


def _grayscale(image: tf.Tensor) -> tf.Tensor:
    """Pillow's RGB -> L conversion (fixed-point luma), HxWx1 float32 holding integers.

    All partial sums are integers below 2**24, so float32 arithmetic is exact.
    """
    weights = tf.constant([[LUMA_WEIGHTS[0]], [LUMA_WEIGHTS[1]], [LUMA_WEIGHTS[2]]], tf.float32)
    shape = tf.shape(image)
    weighted = tf.matmul(tf.reshape(to_float(image), [-1, 3]), weights) + 32768.0
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
    lo = to_float(tf.reduce_min(image, axis=[0, 1]))
    hi = to_float(tf.reduce_max(image, axis=[0, 1]))
    stretch = hi > lo
    lo = tf.where(stretch, lo, 0.0)  # constant channels stay as they are
    span = tf.where(stretch, hi - lo, 255.0)
    # Integers below 2**24 and a correctly rounded division: the floor is exact.
    return tf.cast((to_float(image) - lo) * 255.0 / span, tf.uint8)


def equalize(image: tf.Tensor) -> tf.Tensor:
    """Pillow ImageOps.equalize: per-channel histogram equalization (one vectorized histogram)."""
    index = tf.cast(image, tf.int32) + CHANNEL_OFFSETS
    hist = tf.reshape(
        tf.math.bincount(tf.reshape(index, [-1]), minlength=768, maxlength=768), [3, 256]
    )
    return equalized(hist, index)


def equalized(hist: tf.Tensor, index: tf.Tensor) -> tf.Tensor:
    """Pillow's equalize lookup of histograms [N, 256] (one per image channel), read at
    ``index`` (each pixel's value + 256 x its histogram's row)."""
    values = tf.range(256, dtype=tf.int32)
    last_value = tf.reduce_max(tf.where(hist > 0, values, -1), axis=1)
    last_count = tf.gather(hist, tf.maximum(last_value, 0), batch_dims=1)  # 0: empty channel
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
    return blend(_grayscale(image), image, factor)


def contrast(image: tf.Tensor, factor) -> tf.Tensor:
    """Pillow ImageEnhance.Contrast: blend a constant image of the mean gray level (rounded)."""
    gray = _grayscale(image)
    total = tf.reduce_sum(tf.cast(gray, tf.float64))
    mean = tf.floor(total / tf.cast(tf.size(gray), tf.float64) + 0.5)
    return blend(tf.cast(mean, tf.float32), image, factor)


def brightness(image: tf.Tensor, factor) -> tf.Tensor:
    """Pillow ImageEnhance.Brightness: blend with black."""
    return blend(tf.zeros([], tf.float32), image, factor)


def sharpness(image: tf.Tensor, factor) -> tf.Tensor:
    """Pillow ImageEnhance.Sharpness: blend the SMOOTH-filtered image (border pixels unchanged)."""
    pixels = to_float(image)
    kernel = tf.constant([[1.0, 1.0, 1.0], [1.0, 5.0, 1.0], [1.0, 1.0, 1.0]])
    kernel = tf.tile(kernel[:, :, tf.newaxis, tf.newaxis], [1, 1, 3, 1])
    summed = tf.nn.depthwise_conv2d(pixels[tf.newaxis], kernel, [1, 1, 1, 1], "VALID")[0]
    inner = tf.floor(summed / 13.0 + 0.5)  # integer sums: no ties, so this is exact rounding
    middle = tf.concat([pixels[1:-1, :1], inner, pixels[1:-1, -1:]], axis=1)
    smooth = tf.concat([pixels[:1], middle, pixels[-1:]], axis=0)
    return blend(smooth, image, factor)


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
        center = uniform_ints(shape[:2], as_seed(seed))
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


def as_seed(seed) -> tf.Tensor:
    """A shape-[2] int64 seed for stateless RNG; None draws one from the stateful RNG."""
    if seed is None:
        return tf.random.uniform([2], maxval=2**62, dtype=tf.int64)
    if isinstance(seed, int):
        return tf.constant([seed, 0], tf.int64)
    seed = tf.cast(tf.convert_to_tensor(seed), tf.int64)
    if seed.shape.rank == 0:
        return tf.stack([seed, tf.constant(0, tf.int64)])
    return tf.ensure_shape(seed, [2])


def uniform_ints(maxvals: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
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


def call_op(ops: dict, name: str, images: tf.Tensor, argument) -> tf.Tensor:
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
    return call_op(ops, name, image, argument)


def checked_images(images, rank: int, caller: str, num_layers, magnitude) -> tf.Tensor:
    """``images`` as a uint8 tensor of ``rank`` (3: HxWx3, 4: BxHxWx3), after checking them and
    the policy's arguments; a wrong one is an error that names ``caller``."""
    if not isinstance(num_layers, int) or num_layers < 0:
        raise ValueError(f"num_layers must be a Python int >= 0, got {num_layers!r}")
    if isinstance(magnitude, (int, float)) and magnitude < 0:
        raise ValueError(f"magnitude must be >= 0, got {magnitude}")
    images = tf.convert_to_tensor(images)
    if images.dtype != tf.uint8:
        raise TypeError(
            f"{caller} expects uint8 images, got {images.dtype.name}; "
            "convert with tf.cast(tf.clip_by_value(image, 0, 255), tf.uint8) first"
        )
    if images.shape.rank is not None and (images.shape.rank != rank
                                          or images.shape[-1] not in (3, None)):
        expected = "an HxWx3 image" if rank == 3 else "a BxHxWx3 batch"
        raise ValueError(f"expected {expected}, got shape {images.shape}")
    return images


def draw_layer(seed, hw, batch_size=None) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """One layer's draws from one stateless ``seed``: the op index (uniform over the 16), the
    sign of its argument (+-1, float64) and the cutout centre (y, x; uniform over the pixels of
    size ``hw``), for one image or, with ``batch_size``, per image of a batch ([B], [B], [B, 2])."""
    shape = [4] if batch_size is None else tf.stack([batch_size, 4])
    u = tf.random.stateless_uniform(shape, seed=seed, dtype=tf.float64)
    op_index = tf.minimum(tf.cast(u[..., 0] * len(OP_NAMES), tf.int32), len(OP_NAMES) - 1)
    sign = tf.where(u[..., 1] < 0.5, tf.constant(-1.0, tf.float64), 1.0)
    hw = tf.cast(hw, tf.int32)
    center = tf.minimum(tf.cast(u[..., 2:] * tf.cast(hw, tf.float64), tf.int32), hw - 1)
    return op_index, sign, center


def level_constants(magnitude, hw, translate_const, cutout_const):
    """(magnitude, translate_const, cutout_const) as float64 tensors; a constant left None is
    the reference's scaled to min(height, width) (``hw``) / 224."""
    size = tf.cast(tf.reduce_min(hw), tf.float64)
    if translate_const is None:
        translate_const = size * (REFERENCE_TRANSLATE_CONST / REFERENCE_IMAGE_SIZE)
    if cutout_const is None:
        cutout_const = size * (REFERENCE_CUTOUT_CONST / REFERENCE_IMAGE_SIZE)
    return (tf.cast(magnitude, tf.float64), tf.cast(translate_const, tf.float64),
            tf.cast(cutout_const, tf.float64))


def randaugment_policy(rank: int, apply_layer: Callable, name: str, doc: str) -> Callable:
    """A RandAugment entry point ``name`` for images of ``rank`` (3: one HxWx3 image, 4: a
    BxHxWx3 batch): it checks the images and arguments, takes the level constants for the
    images' size and one stateless seed per layer, and applies each layer as
    ``apply_layer(images, constants, layer_seed)``."""

    @tf.autograph.experimental.do_not_convert  # no tensor-dependent Python control flow here
    def distort(images: tf.Tensor, num_layers: int, magnitude: float, *,
                translate_const: float | None = None, cutout_const: float | None = None,
                seed=None) -> tf.Tensor:
        images = checked_images(images, rank, name, num_layers, magnitude)
        if num_layers == 0:
            return images
        constants = level_constants(magnitude, tf.shape(images)[rank - 3:rank - 1],
                                    translate_const, cutout_const)
        layer_seeds = tf.random.experimental.stateless_split(as_seed(seed), num_layers)
        for layer in range(num_layers):
            images = apply_layer(images, constants, layer_seeds[layer])
        return images

    distort.__name__ = distort.__qualname__ = name
    distort.__doc__ = doc
    return distort


def _distort_image_layer(image: tf.Tensor, constants, seed) -> tf.Tensor:
    """One layer on one image: the op it draws from ``seed``, through one tf.switch_case."""
    op_index, sign, center = draw_layer(seed, tf.shape(image)[:2])
    branches = [lambda i=i: _apply_op(i, image, *constants, sign, center)
                for i in range(len(OP_NAMES))]
    return tf.ensure_shape(tf.switch_case(op_index, branches), [None, None, 3])


distort_image_with_randaugment = randaugment_policy(
    3, _distort_image_layer, "distort_image_with_randaugment",
    """Apply `num_layers` RandAugment ops, each uniform over the 16, at magnitude `magnitude`.

    Args:
      images: uint8 HxWx3 tensor (one image).
      num_layers: N, a Python int >= 0 (0 returns the image unchanged).
      magnitude: M >= 0 (reference scale: max level 10, larger values extrapolate linearly).
      translate_const / cutout_const: translate pixels and cutout half-size at level 10.
        None: the reference's 100 / 40 scaled to min(height, width) / 224 (see
        `randaugment_constants`, which also gives the 32 px Noisy Student values).
      seed: None (stateful RNG), an int, or a shape-[2] int tensor for deterministic results
        (e.g. one per element from `tf.data.Dataset.random()`).

    Returns:
      uint8 tensor of the same shape.
    """)
