"""RandAugment: each op against Pillow / NumPy on real CIFAR-10 images, and the random policy.

Pillow is the independent reference: the RandAugment ops were defined on Pillow (the TF reference
calls them "equivalent of PIL ..."). Images are CIFAR-10 test images at 32 px and upscaled with
Pillow's bicubic resize (64, 96 and a non-square 61x97) to exercise interpolation and centres.
"""


import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from cifar_data import cifar_test_images
from PIL import Image, ImageEnhance, ImageOps

from noisy_student.data import randaugment as ra
from noisy_student.data import randaugment_batch as rab

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

GRAY = (128, 128, 128)

# Nearest-neighbour affine ops: TF rounds sample positions (float32) half away from zero, Pillow
# floors position + 0.5 (double). They may pick different pixels only where a sample position is
# within float error of a half pixel (e.g. shear 0.3 on every 5th row), so those output pixels are
# excluded and all others must match exactly. TIE_MARGIN is far above float32 error at these sizes
# (about 1e-5 px) and far below the spacing of non-tie positions.
TIE_MARGIN = 1e-3


def _load_images() -> list[np.ndarray]:
    small = cifar_test_images(6)

    def up(a, width, height):
        return np.asarray(Image.fromarray(a).resize((width, height), Image.BICUBIC))

    return [small[0], small[1], up(small[2], 64, 64), up(small[3], 96, 96), up(small[4], 61, 97)]


@pytest.fixture(scope="module")
def images():
    return _load_images()


def _ours(fn, image, *args, **kwargs) -> np.ndarray:
    out = fn(tf.constant(image), *args, **kwargs)
    assert out.dtype == tf.uint8 and tuple(out.shape) == image.shape
    return out.numpy()


def _max_diff(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(a.astype(np.int32) - b.astype(np.int32)).max())


def _pil_affine(image: np.ndarray, matrix) -> np.ndarray:
    """Pillow nearest affine for the index-space map input = (a x + b y + tx, d x + e y + ty),
    matrix = (a, b, tx, d, e, ty). Pillow puts pixel centres at +0.5, so its offsets are
    t + 0.5 - 0.5 * (row sum)."""
    a, b, tx, d, e, ty = matrix
    im = Image.fromarray(image)
    coeffs = (a, b, tx + 0.5 - 0.5 * (a + b), d, e, ty + 0.5 - 0.5 * (d + e))
    out = im.transform(im.size, Image.AFFINE, coeffs, resample=Image.NEAREST, fillcolor=GRAY)
    return np.asarray(out)


def _rotation_matrix(shape, degrees):
    """Index-space map of Pillow's Image.rotate (counter-clockwise about the centre)."""
    h, w = shape[:2]
    cy, cx = (h - 1) / 2, (w - 1) / 2
    cos, sin = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
    return (cos, -sin, cx - cos * cx + sin * cy, sin, cos, cy - sin * cx - cos * cy)


def _affine_agrees(ours: np.ndarray, ref: np.ndarray, matrix) -> bool:
    """Equal at every output pixel whose sample position is not at a half-pixel tie."""
    a, b, tx, d, e, ty = matrix
    y, x = np.mgrid[0 : ours.shape[0], 0 : ours.shape[1]]
    tie = np.zeros(x.shape, bool)
    for pos in (a * x + b * y + tx, d * x + e * y + ty):
        tie |= np.abs(pos - np.floor(pos) - 0.5) < TIE_MARGIN
    return not np.any(np.any(ours != ref, axis=-1) & ~tie)


def _np_cutout(image: np.ndarray, cy: int, cx: int, pad: int) -> np.ndarray:
    out = image.copy()
    out[max(cy - pad, 0) : max(cy + pad, 0), max(cx - pad, 0) : max(cx + pad, 0)] = 128
    return out


def _np_solarize_add(image: np.ndarray, addition: int, threshold: int) -> np.ndarray:
    added = np.clip(image.astype(np.int64) + addition, 0, 255).astype(np.uint8)
    return np.where(image < threshold, added, image)


# ---------------------------------------------------------------------------------------------
# Pointwise ops


def test_lookup_table_ops_match_pillow(images):
    for image in images:
        pil = Image.fromarray(image)
        # Integer lookup tables on both sides: exact.
        assert _max_diff(_ours(ra.equalize, image), np.asarray(ImageOps.equalize(pil))) == 0
        assert _max_diff(_ours(ra.invert, image), np.asarray(ImageOps.invert(pil))) == 0
        for bits in range(1, 9):
            ref = np.asarray(ImageOps.posterize(pil, bits))
            assert _max_diff(_ours(ra.posterize, image, bits), ref) == 0, bits
        for threshold in (0, 1, 77, 128, 255, 256, 384):
            ref = np.asarray(ImageOps.solarize(pil, threshold))
            assert _max_diff(_ours(ra.solarize, image, threshold), ref) == 0, threshold
        # Autocontrast: we take floor((v - lo) * 255 / (hi - lo)) exactly; Pillow evaluates
        # v * scale + offset in double and can land just below an integer: at most 1 level.
        ref = np.asarray(ImageOps.autocontrast(pil))
        assert _max_diff(_ours(ra.auto_contrast, image), ref) <= 1


def test_lookup_table_ops_on_degenerate_channels(images):
    """A constant channel and a two-level channel (Pillow's identity and step-0 branches)."""
    image = images[2].copy()
    image[..., 1] = 77
    image[..., 2] = np.where(image[..., 2] > 100, 200, 30)
    pil = Image.fromarray(image)
    assert _max_diff(_ours(ra.equalize, image), np.asarray(ImageOps.equalize(pil))) == 0
    assert _max_diff(_ours(ra.auto_contrast, image), np.asarray(ImageOps.autocontrast(pil))) <= 1
    assert np.array_equal(_ours(ra.auto_contrast, image)[..., 1], image[..., 1])


@pytest.mark.parametrize("factor", [0.0, 0.1, 0.55, 1.0, 1.9, 2.8, 4.6])
def test_enhance_ops_match_pillow(images, factor):
    # Same formulas as Pillow (luma in fixed point, mean gray rounded, SMOOTH filter rounded,
    # blend in float32 then truncated). Allow 1 level for float contraction (FMA) differences
    # in Pillow's C blend; measured difference is 0.
    for image in images:
        pil = Image.fromarray(image)
        for ours, enhancer in (
            (ra.color, ImageEnhance.Color),
            (ra.contrast, ImageEnhance.Contrast),
            (ra.brightness, ImageEnhance.Brightness),
            (ra.sharpness, ImageEnhance.Sharpness),
        ):
            ref = np.asarray(enhancer(pil).enhance(factor))
            assert _max_diff(_ours(ours, image, factor), ref) <= 1, (ours.__name__, image.shape)


@pytest.mark.parametrize("addition", [0, 37, 110, 165, 300, -40])
@pytest.mark.parametrize("threshold", [0, 128, 200, 256])
def test_solarize_add_matches_numpy(images, addition, threshold):
    image = images[3]
    ours = _ours(ra.solarize_add, image, addition, threshold)
    assert np.array_equal(ours, _np_solarize_add(image, addition, threshold))


def test_cutout_matches_numpy(images):
    for image in images[:4]:
        h, w = image.shape[:2]
        for cy, cx in ((0, 0), (h - 1, w - 1), (h // 2, w // 3), (3, w - 2)):
            for pad in (0, 1, 4, 13, 100):
                ours = _ours(ra.cutout, image, pad, center=(cy, cx))
                assert np.array_equal(ours, _np_cutout(image, cy, cx, pad)), (cy, cx, pad)


# ---------------------------------------------------------------------------------------------
# Affine ops


@pytest.mark.parametrize("degrees", [13.0, -30.0, 45.0, -45.0, 90.0])
def test_rotate_matches_pillow(images, degrees):
    for image in images:
        ref = np.asarray(
            Image.fromarray(image).rotate(degrees, resample=Image.NEAREST, fillcolor=GRAY)
        )
        ours = _ours(ra.rotate, image, degrees)
        assert _affine_agrees(ours, ref, _rotation_matrix(image.shape, degrees)), image.shape


@pytest.mark.parametrize("level", [0.1, 0.3, -0.3, 0.45, -0.45])
def test_shear_matches_pillow(images, level):
    for image in images:
        for ours, matrix in (
            (ra.shear_x, (1, level, 0, 0, 1, 0)),
            (ra.shear_y, (1, 0, 0, level, 1, 0)),
        ):
            out = _ours(ours, image, level)
            assert _affine_agrees(out, _pil_affine(image, matrix), matrix), ours.__name__


@pytest.mark.parametrize("pixels", [6.0, -6.0, 0.5, 2.7, -14.3, 150.0])
def test_translate_matches_pillow(images, pixels):
    # Both sides sample input x + floor(pixels + 0.5): exact.
    for image in images:
        ref_x = _pil_affine(image, (1, 0, pixels, 0, 1, 0))
        ref_y = _pil_affine(image, (1, 0, 0, 0, 1, pixels))
        assert np.array_equal(_ours(ra.translate_x, image, pixels), ref_x)
        assert np.array_equal(_ours(ra.translate_y, image, pixels), ref_y)


# ---------------------------------------------------------------------------------------------
# The random policy


def _reference_candidates(image, magnitude, translate_const, cutout_const):
    """Every possible one-op output at `magnitude`, from Pillow/NumPy and the reference's level
    rules (tensorflow/tpu autoaugment.py: level = M / 10, extrapolated past 10)."""
    level = magnitude / 10.0
    pil = Image.fromarray(image)
    enhance = level * 1.8 + 0.1
    exact = {
        "AutoContrast": np.asarray(ImageOps.autocontrast(pil)),
        "Equalize": np.asarray(ImageOps.equalize(pil)),
        "Invert": np.asarray(ImageOps.invert(pil)),
        "Posterize": np.asarray(ImageOps.posterize(pil, min(int(level * 4), 8))),
        "Solarize": np.asarray(ImageOps.solarize(pil, int(level * 256))),
        "Color": np.asarray(ImageEnhance.Color(pil).enhance(enhance)),
        "Contrast": np.asarray(ImageEnhance.Contrast(pil).enhance(enhance)),
        "Brightness": np.asarray(ImageEnhance.Brightness(pil).enhance(enhance)),
        "Sharpness": np.asarray(ImageEnhance.Sharpness(pil).enhance(enhance)),
        "SolarizeAdd": _np_solarize_add(image, int(level * 110), 128),
    }
    affine = {}  # name -> (Pillow output, index-space matrix)
    for sign, tag in ((1, "+"), (-1, "-")):
        shear, shift = sign * level * 0.3, sign * level * translate_const
        degrees = sign * level * 30
        rotated = np.asarray(pil.rotate(degrees, resample=Image.NEAREST, fillcolor=GRAY))
        affine["Rotate" + tag] = (rotated, _rotation_matrix(image.shape, degrees))
        for name, matrix in (
            ("ShearX", (1, shear, 0, 0, 1, 0)),
            ("ShearY", (1, 0, 0, shear, 1, 0)),
        ):
            affine[name + tag] = (_pil_affine(image, matrix), matrix)
        exact["TranslateX" + tag] = _pil_affine(image, (1, 0, shift, 0, 1, 0))
        exact["TranslateY" + tag] = _pil_affine(image, (1, 0, 0, 0, 1, shift))
    return exact, affine, int(level * cutout_const)


def _matching_ops(out, image, exact, affine, cutout_pad) -> set[str]:
    """Names (with +/- for the signed ops) of the candidates that `out` equals."""
    names = {k for k, ref in exact.items() if _max_diff(out, ref) <= 1}
    names |= {k for k, (ref, matrix) in affine.items() if _affine_agrees(out, ref, matrix)}
    changed = np.argwhere(np.any(out != image, axis=-1))
    if len(changed) and np.all(out[tuple(changed.T)] == 128):
        # Looks like a cutout: try every centre within `pad` of the changed pixels.
        (r0, c0), (r1, c1) = changed.min(axis=0), changed.max(axis=0)
        h, w = image.shape[:2]
        for cy in range(max(r1 - cutout_pad, 0), min(r0 + cutout_pad + 1, h)):
            for cx in range(max(c1 - cutout_pad, 0), min(c0 + cutout_pad + 1, w)):
                if np.array_equal(out, _np_cutout(image, cy, cx, cutout_pad)):
                    return names | {"Cutout"}
    return names


def test_policy_applies_one_reference_op_per_layer(images):
    """M=15 (past the max level 10): each N=1 output is one of the 16 ops at the reference level,
    all 16 ops occur, and the signed ops occur with both signs."""
    image = images[2]
    exact, affine, pad = _reference_candidates(image, 15.0, 10.0, 8.0)
    distort = tf.function(
        lambda x, seed: ra.distort_image_with_randaugment(
            x, 1, 15.0, translate_const=10.0, cutout_const=8.0, seed=seed
        )
    )
    seen = set()
    # 160 uniform draws over 16 ops miss one with probability < 1e-3; the seeds are fixed.
    for seed in range(160):
        out = distort(tf.constant(image), tf.constant([seed, 7])).numpy()
        names = _matching_ops(out, image, exact, affine, pad)
        assert names, f"seed {seed}: output matches none of the 16 reference ops"
        seen |= names
    assert {name.rstrip("+-") for name in seen} == set(ra.OP_NAMES)
    assert any(name.endswith("+") for name in seen) and any(name.endswith("-") for name in seen)


def test_default_constants_scale_with_image_size(images):
    """None = the reference's 100 / 40 at 224 px, scaled by min(height, width) / 224."""
    image = tf.constant(images[4])  # 97 x 61
    scaled = dict(translate_const=100.0 * 61 / 224, cutout_const=40.0 * 61 / 224)
    for seed in range(24):
        default = ra.distort_image_with_randaugment(image, 2, 15, seed=seed)
        explicit = ra.distort_image_with_randaugment(image, 2, 15, seed=seed, **scaled)
        assert np.array_equal(default.numpy(), explicit.numpy()), seed


def test_seeded_policy_is_deterministic_and_varies(images):
    image = tf.constant(images[3])
    graph = tf.function(lambda x, s: ra.distort_image_with_randaugment(x, 2, 15, seed=s))
    outs = [graph(image, tf.constant([s, 0])).numpy() for s in range(8)]
    again = [graph(image, tf.constant([s, 0])).numpy() for s in range(8)]
    assert all(np.array_equal(a, b) for a, b in zip(outs, again, strict=True))
    assert len({o.tobytes() for o in outs}) >= 4
    # Eager with an int seed gives the same result as graph mode with seed [s, 0].
    assert np.array_equal(ra.distort_image_with_randaugment(image, 2, 15, seed=3).numpy(), outs[3])


def test_magnitude_beyond_max_level_changes_result(images):
    image = tf.constant(images[3])
    graph = tf.function(lambda x, m, s: ra.distort_image_with_randaugment(x, 1, m, seed=s))
    changed = [
        not np.array_equal(
            graph(image, tf.constant(10.0), tf.constant([s, 0])).numpy(),
            graph(image, tf.constant(20.0), tf.constant([s, 0])).numpy(),
        )
        for s in range(12)
    ]
    assert sum(changed) >= 3  # the magnitude-free ops (AutoContrast, Equalize, Invert) stay


def test_zero_layers_is_identity(images):
    image = tf.constant(images[2])
    out = ra.distort_image_with_randaugment(image, 0, 15, seed=1)
    assert np.array_equal(out.numpy(), images[2])


def test_works_in_tf_data_map(images):
    small = np.stack(images[:2] + [images[0]])  # 32x32 images
    seeds = tf.data.Dataset.random(seed=5).batch(2)
    dataset = tf.data.Dataset.zip(tf.data.Dataset.from_tensor_slices(small), seeds).map(
        lambda x, s: ra.distort_image_with_randaugment(
            x, 2, 15, translate_const=4, cutout_const=4, seed=s
        ),
        num_parallel_calls=2,
        deterministic=True,
    )
    first = [x.numpy() for x in dataset]
    second = [x.numpy() for x in dataset]
    assert [(o.dtype, o.shape) for o in first] == [(np.uint8, (32, 32, 3))] * 3
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))
    # Unseeded: stateful RNG inside the map, still uint8 HxWx3.
    unseeded = tf.data.Dataset.from_tensor_slices(small).map(
        lambda x: ra.distort_image_with_randaugment(x, 2, 27)
    )
    assert all(o.shape == (32, 32, 3) and o.dtype == tf.uint8 for o in unseeded)


def test_bad_arguments_raise(images):
    image = tf.constant(images[0])
    with pytest.raises(TypeError, match="uint8"):
        ra.distort_image_with_randaugment(tf.cast(image, tf.float32), 2, 10)
    with pytest.raises(ValueError, match="num_layers"):
        ra.distort_image_with_randaugment(image, -1, 10)
    with pytest.raises(ValueError, match="magnitude"):
        ra.distort_image_with_randaugment(image, 2, -3)
    with pytest.raises(ValueError, match="HxWx3"):
        ra.distort_image_with_randaugment(image[..., :1], 2, 10)


def test_constants_follow_reference():
    # Reference: 100 / 40 at 224 px; Noisy Student 32 px path: image_size // 8 for both.
    assert ra.randaugment_constants(224) == (100.0, 40.0)
    assert ra.randaugment_constants(448) == (200.0, 80.0)
    assert ra.randaugment_constants(32, small_images=True) == (4.0, 4.0)


# ---------------------------------------------------------------------------------------------
# Batched RandAugment (small images): each batched op against the per-image op (itself checked
# against Pillow above), and the per-image random policy on a batch.

# (magnitude, translate_const, cutout_const): the 32 px recipe, half-integer translates
# (+-2.5 -> +3 / -2), and an extrapolated magnitude.
BATCH_SETTINGS = [(5.0, 4.0, 4.0), (5.0, 5.0, 6.0), (27.0, 4.0, 4.0)]


def _batches() -> list[np.ndarray]:
    small = cifar_test_images(6)
    constant = np.full((1, 32, 32, 3), 77, np.uint8)
    two_levels = np.where(np.arange(32)[None, :, None, None] < 16, 10, 200).repeat(32, 2)
    two_levels = np.broadcast_to(two_levels, (1, 32, 32, 3)).astype(np.uint8)
    square = np.concatenate([small, constant, two_levels])
    return [square, small[:4, 3:23, 1:29]]  # and a non-square 20x28 batch


@pytest.mark.parametrize("index", range(len(ra.OP_NAMES)), ids=ra.OP_NAMES)
def test_batched_op_equals_per_image_op(index):
    rng = np.random.default_rng(index)
    for batch in _batches():
        b, h, w, _ = batch.shape
        signs = np.where(np.arange(b) % 2 == 0, -1.0, 1.0)
        centers = np.stack([rng.integers(0, h, b), rng.integers(0, w, b)], axis=1)
        centers[0], centers[1] = (0, 0), (h - 1, w - 1)  # cutout at the corners
        for magnitude, translate, cutout in BATCH_SETTINGS[:3 if h == w else 1]:
            mag = tf.constant(magnitude, tf.float64)
            consts = (tf.constant(translate, tf.float64), tf.constant(cutout, tf.float64))
            got = rab.apply_op_batch(index, tf.constant(batch), mag, *consts,
                                    tf.constant(signs), tf.constant(centers, tf.int32))
            assert got.dtype == tf.uint8 and tuple(got.shape) == batch.shape
            for i in range(b):
                want = ra._apply_op(index, tf.constant(batch[i]), mag, *consts,
                                    tf.constant(signs[i], tf.float64),
                                    tf.constant(centers[i], tf.int32)).numpy()
                np.testing.assert_array_equal(
                    got[i].numpy(), want,
                    err_msg=f"{ra.OP_NAMES[index]} image {i} M={magnitude} shape {batch.shape}")


EMPTY_GROUP_SCRIPT = """
import tensorflow as tf
from noisy_student.data import randaugment as ra
from noisy_student.data import randaugment_batch as rab
empty = tf.zeros([0, 32, 32, 3], tf.uint8)
args = (tf.constant(10.0, tf.float64), tf.constant(5.0, tf.float64),
        tf.constant(4.0, tf.float64), tf.zeros([0], tf.float64), tf.zeros([0, 2], tf.int32))
for index, name in enumerate(ra.OP_NAMES):
    eager = rab.apply_op_batch(index, empty, *args)
    graph = tf.function(lambda x: rab.apply_op_batch(index, x, *args),
                        input_signature=[tf.TensorSpec([None, 32, 32, 3], tf.uint8)])(empty)
    print(name, tuple(eager.shape), tuple(graph.shape))
"""


@pytest.mark.parametrize("onednn", ["0", "1"])
def test_batched_ops_on_an_empty_group(onednn):
    """A layer runs every op on the images that drew it; when none did, the op gets an empty
    group and must return one. With oneDNN (TensorFlow's default on x86, off in this suite),
    a VALID depthwise convolution of an empty batch kept its input's size, and Sharpness
    crashed training after a random number of steps."""
    env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": onednn, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-c", EMPTY_GROUP_SCRIPT], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.split("\n")
    for name in ra.OP_NAMES:
        assert f"{name} (0, 32, 32, 3) (0, 32, 32, 3)" in lines, done.stdout


def test_batched_draws_are_uniform_per_image():
    n = 32000
    op, signs, centers = (t.numpy() for t in ra.draw_layer(
        tf.constant([5, 6], tf.int64), tf.constant([32, 20]), n))
    counts = np.bincount(op, minlength=16)
    expected = n / 16
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 37.7, counts  # chi-square, 15 dof, p = 0.001
    assert set(np.unique(signs)) == {-1.0, 1.0}
    assert abs((signs > 0).mean() - 0.5) < 4 * 0.5 / np.sqrt(n)
    for axis, size in enumerate((32, 20)):
        values = np.bincount(centers[:, axis], minlength=size)
        assert len(values) == size and values.min() > 0.8 * n / size
        assert values.max() < 1.2 * n / size


def test_batched_randaugment_applies_each_images_own_op():
    """N=1 on a batch of copies of one image: every output must be exactly one op's per-image
    result (any sign, any cutout centre), and the ops found are uniform over the 16."""
    rng = np.random.default_rng(0)
    image = rng.integers(30, 250, (12, 12, 3), dtype=np.uint8)
    magnitude, translate, cutout = 9.0, 3.0, 3.0
    consts = (tf.constant(translate, tf.float64), tf.constant(cutout, tf.float64))
    mag = tf.constant(magnitude, tf.float64)
    signed = {"Rotate", "ShearX", "ShearY", "TranslateX", "TranslateY"}
    owner = {}
    for index, name in enumerate(ra.OP_NAMES):
        signs = (-1.0, 1.0) if name in signed else (1.0,)
        centers = [(y, x) for y in range(12) for x in range(12)] if name == "Cutout" else [(0, 0)]
        for sign in signs:
            for center in centers:
                out = ra._apply_op(index, tf.constant(image), mag, *consts,
                                   tf.constant(sign, tf.float64), tf.constant(center))
                # Every op's results differ from every other op's: outputs identify the op.
                assert owner.setdefault(out.numpy().tobytes(), index) == index
    n = 1600
    batch = tf.constant(np.broadcast_to(image, (n, 12, 12, 3)))
    out = rab.distort_batch_with_randaugment(batch, 1, magnitude, translate_const=translate,
                                            cutout_const=cutout, seed=[3, 4]).numpy()
    found = np.array([owner[o.tobytes()] for o in out])  # KeyError: not any op's result
    counts = np.bincount(found, minlength=16)
    assert counts.min() > 0, counts  # images in one batch get different ops
    chi2 = float(((counts - n / 16) ** 2 / (n / 16)).sum())
    assert chi2 < 37.7, counts
    # Same seed, same result; another seed, other ops.
    again = rab.distort_batch_with_randaugment(batch, 1, magnitude, translate_const=translate,
                                              cutout_const=cutout, seed=[3, 4]).numpy()
    np.testing.assert_array_equal(out, again)
    other = rab.distort_batch_with_randaugment(batch[:32], 1, magnitude, translate_const=translate,
                                              cutout_const=cutout, seed=[3, 5]).numpy()
    assert not np.array_equal(out[:32], other)


def test_batched_randaugment_layers_compose_and_run_in_tf_function():
    images = tf.constant(cifar_test_images(6))
    graph = tf.function(
        lambda x, s: rab.distort_batch_with_randaugment(x, 2, 10, seed=s),
        input_signature=[tf.TensorSpec([None, 32, 32, 3], tf.uint8),
                         tf.TensorSpec([2], tf.int64)])
    out = graph(images, tf.constant([7, 8], tf.int64))
    assert out.dtype == tf.uint8 and out.shape == images.shape
    assert not np.array_equal(out.numpy(), images.numpy())
    partial = graph(images[:0], tf.constant([7, 8], tf.int64))  # an empty (last) batch
    assert partial.shape == (0, 32, 32, 3)
    assert rab.distort_batch_with_randaugment(images, 0, 10) is images
    with pytest.raises(TypeError, match="uint8"):
        rab.distort_batch_with_randaugment(tf.cast(images, tf.float32), 2, 10)
    with pytest.raises(ValueError, match="BxHxWx3"):
        rab.distort_batch_with_randaugment(images[0], 2, 10)


def test_batched_random_cutout_centres_per_image():
    images = tf.fill([400, 16, 16, 3], tf.constant(7, tf.uint8))
    out = rab.cutout_batch_random(images, 2, tf.constant([1, 2], tf.int64)).numpy()
    filled = (out == 128).all(axis=3)
    assert (filled.sum(axis=(1, 2)) >= 4).all()  # at least a clipped 2x2 patch each
    assert len({f.tobytes() for f in filled}) > 100  # per-image positions
