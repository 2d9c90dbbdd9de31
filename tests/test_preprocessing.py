"""Preprocessing against independent NumPy/Pillow computations on real CIFAR-10 images."""


import numpy as np
import pytest
import tensorflow as tf
from data_helpers import encode, sample_pixels
from PIL import Image

from noisy_student.data import preprocessing as pp


@pytest.fixture(scope="module")
def pixels():
    images, _ = sample_pixels(8)
    return images


@pytest.fixture(scope="module")
def big(pixels):
    """A real image upscaled to 40 x 50 (height x width) with Pillow."""
    return np.array(Image.fromarray(pixels[0]).resize((50, 40), Image.BICUBIC))


def test_center_crop_window_hand_computed():
    # 224 / 256 * 256 = 224; offsets (256-224+1)//2 = 16 and (341-224+1)//2 = 59.
    window = pp.center_crop_window(tf.constant([256, 341, 3]), 224)
    assert [int(v) for v in window] == [16, 59, 224, 224]
    # floor(300 / 332 * 375) = 338
    window = pp.center_crop_window(tf.constant([500, 375, 3]), 300)
    assert [int(v) for v in window] == [(500 - 338 + 1) // 2, (375 - 338 + 1) // 2, 338, 338]


def test_eval_png_center_crop_matches_numpy(big):
    # side = floor(32 / (32 + 8) * 40) = 32, so no resampling: exact pixels.
    out = pp.preprocess_for_eval(encode(big), 32, crop_padding=8)
    assert out.dtype == tf.float32 and out.shape == (32, 32, 3)
    oy, ox = (40 - 32 + 1) // 2, (50 - 32 + 1) // 2
    np.testing.assert_array_equal(out.numpy(), big[oy:oy + 32, ox:ox + 32].astype(np.float32))


def test_eval_jpeg_crop_while_decoding_matches_full_decode(big):
    data = encode(big, "JPEG", quality=95)
    full = tf.io.decode_jpeg(data, channels=3).numpy()
    out = pp.preprocess_for_eval(data, 32, crop_padding=8).numpy()
    oy, ox = (40 - 32 + 1) // 2, (50 - 32 + 1) // 2
    np.testing.assert_allclose(out, full[oy:oy + 32, ox:ox + 32], atol=2)
    # and it is the same picture as the PNG path up to JPEG loss
    png = pp.preprocess_for_eval(encode(big), 32, crop_padding=8).numpy()
    assert np.abs(out - png).mean() < 4


def test_eval_bicubic_upsampling_matches_pillow(pixels):
    for image in pixels[:4]:
        out = pp.preprocess_for_eval(encode(image), 64, small_images=True).numpy()
        ref = np.array(Image.fromarray(image).resize((64, 64), Image.BICUBIC)).astype(np.float32)
        assert np.abs(out - ref).mean() < 1.0  # Pillow rounds to uint8; same a=-0.5 kernel


def test_eval_small_image_same_size_is_exact(pixels):
    out = pp.preprocess_for_eval(encode(pixels[1]), 32, small_images=True)
    np.testing.assert_array_equal(out.numpy(), pixels[1].astype(np.float32))


def test_outputs_in_range_with_dtype(big):
    for data in (encode(big), encode(big, "JPEG")):
        for fn in (lambda d: pp.preprocess_for_train(d, 48, dtype=tf.bfloat16),
                   lambda d: pp.preprocess_for_eval(d, 48, dtype=tf.bfloat16)):
            out = fn(data)
            assert out.dtype == tf.bfloat16 and out.shape == (48, 48, 3)
            values = tf.cast(out, tf.float32).numpy()
            assert values.min() >= 0 and values.max() <= 255
            assert values.std() > 10  # a real picture, not a blank


def test_inception_window_properties():
    shape = tf.constant([300, 400, 3])
    windows = set()
    for s in range(40):
        oy, ox, h, w = (int(v) for v in pp.inception_crop_window(shape, tf.constant([s, 7]), 224))
        windows.add((oy, ox, h, w))
        assert 0 <= oy and oy + h <= 300 and 0 <= ox and ox + w <= 400
        if (h, w) == (300, 400):
            pytest.fail("the whole image must be replaced by the center crop")
        area = h * w / (300 * 400)
        assert 0.08 - 0.01 <= area <= 1.0
        assert 3 / 4 - 0.02 <= w / h <= 4 / 3 + 0.02
    assert len(windows) > 30  # random


def test_inception_window_falls_back_to_center_crop():
    # A 10 x 400 strip: no window with aspect in [3/4, 4/3] covers 8% of it.
    shape = tf.constant([10, 400, 3])
    center = [int(v) for v in pp.center_crop_window(shape, 16)]
    for s in range(5):
        got = [int(v) for v in pp.inception_crop_window(shape, tf.constant([s, 1]), 16)]
        assert got == center


def test_train_fallback_equals_eval_or_its_mirror(pixels):
    strip = np.concatenate([pixels[i] for i in range(8)], axis=1)[:12]  # 12 x 256
    data = encode(strip)
    evaluated = pp.preprocess_for_eval(data, 16).numpy()
    for s in range(4):
        out = pp.preprocess_for_train(data, 16, seed=[s, 3]).numpy()
        assert (np.array_equal(out, evaluated) or np.array_equal(out, evaluated[:, ::-1]))


def test_train_is_reproducible_with_a_seed_and_random_without(big):
    data = encode(big)
    a = pp.preprocess_for_train(data, 24, seed=[5, 6]).numpy()
    b = pp.preprocess_for_train(data, 24, seed=[5, 6]).numpy()
    np.testing.assert_array_equal(a, b)
    outs = [pp.preprocess_for_train(data, 24).numpy() for _ in range(6)]
    assert any(not np.array_equal(outs[0], o) for o in outs[1:])


def test_small_image_train_is_a_reflect_padded_crop(pixels):
    image = pixels[2]
    padded = np.pad(image, ((4, 4), (4, 4), (0, 0)), mode="reflect").astype(np.float32)
    offsets, flips = set(), set()
    for s in range(12):
        out = pp.preprocess_for_train(encode(image), 32, small_images=True, seed=[s, 9]).numpy()
        found = [(dy, dx, flip) for dy in range(9) for dx in range(9) for flip in (0, 1)
                 if np.array_equal(out, (padded[dy:dy + 32, dx:dx + 32][:, ::-1] if flip
                                         else padded[dy:dy + 32, dx:dx + 32]))]
        assert found, "output is not a 32x32 window of the reflect-padded image"
        offsets.add(found[0][:2])
        flips.add(found[0][2])
    assert len(offsets) > 3 and flips == {0, 1}


def test_train_runs_in_a_tf_function(big):
    fn = tf.function(lambda d: pp.preprocess_for_train(d, 32))
    assert fn(tf.constant(encode(big, "JPEG"))).shape == (32, 32, 3)
    assert fn(tf.constant(encode(big))).shape == (32, 32, 3)


@pytest.fixture
def fake_randaugment(monkeypatch):
    """Replaces the RandAugment policy (tested in test_randaugment.py) with an inversion that
    records its arguments, and the extra small-image cutout with a recorder, so the hook's
    placement, uint8 conversion and size-scaled constants are visible."""
    from noisy_student.data import randaugment

    calls = []

    def distort_image_with_randaugment(image, num_layers, magnitude, **kwargs):
        calls.append((image.dtype, num_layers, magnitude, kwargs["translate_const"],
                      kwargs["cutout_const"]))
        return 255 - image

    def cutout(image, pad_size, **kwargs):
        calls.append(("cutout", pad_size))
        return image

    monkeypatch.setattr(randaugment, "distort_image_with_randaugment",
                        distort_image_with_randaugment)
    monkeypatch.setattr(randaugment, "cutout", cutout)
    return calls


def test_randaugment_hook_on_uint8_after_resize(big, fake_randaugment):
    data = encode(big)
    plain = pp.preprocess_for_train(data, 24, seed=[1, 2]).numpy()
    assert fake_randaugment == []  # not called when switched off
    out = pp.preprocess_for_train(data, 24, seed=[1, 2], randaug_num_layers=2,
                                  randaug_magnitude=9.0).numpy()
    # Reference constants 100 (translate) and 40 (cutout) at 224 px, scaled to 24 px.
    assert fake_randaugment == [(tf.uint8, 2, 9.0, 100 * 24 / 224, 40 * 24 / 224)]
    np.testing.assert_array_equal(out, 255 - np.round(plain))


def test_randaugment_hook_small_image_before_crop(pixels, fake_randaugment):
    data = encode(pixels[3])
    plain = pp.preprocess_for_train(data, 32, small_images=True, seed=[4, 4]).numpy()
    out = pp.preprocess_for_train(data, 32, small_images=True, seed=[4, 4],
                                  randaug_num_layers=1).numpy()
    # Reference 32x32 recipe: translate and cutout constants size/8, then a cutout of size/4.
    assert fake_randaugment == [(tf.uint8, 1, 10.0, 4.0, 4.0), ("cutout", 8)]
    np.testing.assert_array_equal(out, 255 - plain)


def test_undecodable_bytes_raise():
    with pytest.raises(tf.errors.InvalidArgumentError):
        pp.preprocess_for_eval(b"definitely not an image", 32)


def _windows(image: np.ndarray) -> dict[bytes, tuple[int, int, int]]:
    """Every 32x32 window of the reflect-padded image, plain and mirrored -> (dy, dx, flip)."""
    padded = np.pad(image, ((4, 4), (4, 4), (0, 0)), mode="reflect").astype(np.float32)
    found = {}
    for dy in range(9):
        for dx in range(9):
            window = padded[dy:dy + 32, dx:dx + 32]
            found.setdefault(window.tobytes(), (dy, dx, 0))
            found.setdefault(np.ascontiguousarray(window[:, ::-1]).tobytes(), (dy, dx, 1))
    return found


def test_small_batch_train_crops_and_flips_each_image(pixels):
    decoded = np.stack([pp.decode_small_for_train(encode(p), 32).numpy() for p in pixels])
    np.testing.assert_array_equal(decoded, pixels)  # 32 px: decoded as is, uint8
    batch = np.concatenate([decoded] * 4)  # 32 images
    out = pp.augment_small_batch_for_train(batch, 32, randaug_num_layers=0,
                                           randaug_magnitude=5.0, seed=[3, 4]).numpy()
    assert out.dtype == np.float32 and out.shape == (32, 32, 32, 3)
    placements = []
    for image, result in zip(batch, out, strict=True):
        placement = _windows(image).get(result.tobytes())
        assert placement is not None, "not a window of the reflect-padded image"
        placements.append(placement)
    assert len({p[:2] for p in placements}) > 10 and {p[2] for p in placements} == {0, 1}


def test_small_batch_train_randaugment_is_seeded_and_cuts_out_each_image(pixels):
    decoded = tf.constant(np.concatenate([pixels] * 4))

    def run(seed):
        return pp.augment_small_batch_for_train(decoded, 32, randaug_num_layers=2,
                                                randaug_magnitude=9.0, dtype=tf.bfloat16,
                                                seed=seed)

    a, b, c = run([1, 2]), run([1, 2]), run([1, 3])
    assert a.dtype == tf.bfloat16 and a.shape == (32, 32, 32, 3)
    a, b, c = (tf.cast(t, tf.float32).numpy() for t in (a, b, c))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.min() >= 0 and a.max() <= 255
    # The extra side // 4 cutout runs before pad and crop: >= a 4x4 gray patch survives.
    gray = (a == 128).all(axis=3).sum(axis=(1, 2))
    assert (gray >= 16).all(), gray
