"""Class activation maps: they point at the region that drives the class, CAM and Grad-CAM agree
on our EfficientNet head, and the grid tool writes a readable PNG comparing models."""

import os
import subprocess
import sys

import numpy as np
import pytest
from tiny_models import make_model_fn

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIDE = 16


def _two_patch_model(keras):
    """Channels = R, G, B after a 2x2 average pool (features 8x8); class 0 reads red, class 1
    green. The head is the EfficientNet one: top_activation -> avg_pool -> predictions."""
    inputs = keras.Input((SIDE, SIDE, 3))
    x = keras.layers.AveragePooling2D(2, name="pool")(inputs)
    x = keras.layers.Conv2D(3, 1, use_bias=False, name="top_conv")(x)
    x = keras.layers.Activation("relu", name="top_activation")(x)
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    outputs = keras.layers.Dense(2, activation="softmax", name="predictions")(x)
    model = keras.Model(inputs, outputs)
    model.get_layer("top_conv").set_weights([np.eye(3, dtype="float32")[None, None]])
    kernel = np.array([[1, 0], [0, 1], [0, 0]], "float32")
    model.get_layer("predictions").set_weights([kernel, np.zeros(2, "float32")])
    return model


def _two_patch_images():
    """Image 0: red top-left 6x6 and green bottom-right 4x4; image 1 off the diagonal (so a
    transposed map fails): red top-right 6x6, green bottom-left 4x4."""
    images = np.zeros((2, SIDE, SIDE, 3), "float32")
    images[0, :6, :6, 0] = 255
    images[0, -4:, -4:, 1] = 255
    images[1, :6, -6:, 0] = 255
    images[1, -4:, :4, 1] = 255
    return images


@pytest.mark.parametrize("method", ["cam", "gradcam"])
def test_heat_map_peaks_where_the_class_evidence_is(keras, method):
    from noisy_student.evaluation.cam import class_activation_maps

    model, images = _two_patch_model(keras), _two_patch_images()
    top, bottom, left, right = slice(0, 6), slice(-6, None), slice(0, 6), slice(-6, None)
    red = class_activation_maps(model, images, method=method, classes=0)
    green = class_activation_maps(model, images, method=method, classes=1)
    expected = {  # (class, image) -> the 6x6 corner that must hold the peak
        (0, 0): (top, left), (1, 0): (bottom, right), (0, 1): (top, right), (1, 1): (bottom, left)}
    for (which, image), corner in expected.items():
        heat = (red, green)[which].heatmaps[image]
        assert heat.shape == (SIDE, SIDE)
        assert 0.0 <= heat.min() and heat.max() == pytest.approx(1.0)
        peak = np.unravel_index(heat.argmax(), heat.shape)
        inside = np.zeros_like(heat, bool)
        inside[corner] = True
        assert inside[peak], (method, which, image, peak)
        assert heat[inside].mean() > 3 * heat[~inside].mean(), (method, which, image)


def test_default_class_is_the_top_prediction(keras):
    from noisy_student.evaluation.cam import class_activation_maps

    result = class_activation_maps(_two_patch_model(keras), _two_patch_images())
    # Red covers 36 pixels and green 16 in both images: class 0 wins both.
    np.testing.assert_array_equal(result.classes, [0, 0])
    assert result.probabilities[:, 0].min() > 0.5


def test_gradcam_equals_rectified_cam_on_efficientnet(keras):
    """On GAP + dense, d logit / d A_k = W[k, c] / (h w): Grad-CAM = ReLU(CAM) / (h w). This
    runs the real model and its gradient path (tiny B0, 16x16 feature map)."""
    from noisy_student.evaluation.cam import class_activation_maps

    model = make_model_fn(keras, seed=3, small_images=True)()
    images = np.random.default_rng(0).uniform(0, 255, (3, 32, 32, 3)).astype("float32")
    cam = class_activation_maps(model, images, method="cam", classes=[1, 4, 7], normalize=False)
    grad = class_activation_maps(model, images, method="gradcam", classes=[1, 4, 7],
                                 normalize=False)
    h, w = cam.heatmaps.shape[1:]
    assert (h, w) == (16, 16)
    np.testing.assert_array_equal(cam.classes, [1, 4, 7])
    np.testing.assert_allclose(grad.heatmaps * h * w, np.maximum(cam.heatmaps, 0),
                               rtol=1e-4, atol=1e-5)
    assert grad.heatmaps.max() > 0  # not trivially zero
    # CAM is defined only on the layer pooled into the classifier; Grad-CAM on any.
    with pytest.raises(ValueError, match="use method='gradcam'"):
        class_activation_maps(model, images, method="cam", layer_name="block1a")
    inner = class_activation_maps(model, images, method="gradcam", layer_name="block1a")
    assert inner.heatmaps.shape == (3, 32, 32)
    with pytest.raises(ValueError, match="no layer 'nope'"):
        class_activation_maps(model, images, layer_name="nope")
    with pytest.raises(ValueError, match=r"class indices must lie in \[0, 10\)"):
        class_activation_maps(model, images, classes=10)


def test_overlay_blends_toward_the_colormap():
    from noisy_student.evaluation.cam import overlay

    image = np.full((4, 4, 3), 100.0)
    heat = np.zeros((4, 4))
    heat[0, 0] = 1.0
    out = overlay(image, heat, alpha=0.5)
    assert out.dtype == np.uint8 and out.shape == (4, 4, 3)
    # jet: 0 is dark blue, 1 is dark red.
    assert out[0, 0, 0] > out[0, 0, 2] and out[1, 1, 2] > out[1, 1, 0]


def test_grid_tool_compares_two_models(tmp_path, keras):
    """noisy_student.cli.cam.make_grid on two saved tiny models and a folder of PNG files: one
    row per image, one column per model, titles from --names; a missing model names the file."""
    from PIL import Image

    from noisy_student.cli import cam as cam_tool
    from noisy_student.training import save_model

    paths = []
    for seed in (1, 2):
        paths.append(str(tmp_path / f"m{seed}.keras"))
        save_model(make_model_fn(keras, seed=seed, small_images=True)(), paths[-1])
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(
            folder / f"{i}.png")
    out = str(tmp_path / "grid.png")
    result = cam_tool.make_grid(paths, str(folder), out, names=["teacher", "student"],
                                num_images=2, small_images=True)
    assert result["rows"] == 2 and result["columns"] == ["teacher", "student"]
    with Image.open(out) as grid:
        assert grid.format == "PNG" and grid.width > grid.height  # 3 panels wide, 2 high
    assert sorted(os.listdir(tmp_path)) == ["grid.png", "images", "m1.keras", "m2.keras"]
    with pytest.raises(FileNotFoundError, match="missing.keras"):
        cam_tool.make_grid([str(tmp_path / "missing.keras")], str(folder), out)
    with pytest.raises(FileNotFoundError, match="no_images"):
        cam_tool.make_grid(paths, str(tmp_path / "no_images"), out, small_images=True)


def test_cam_help_explains_the_flags():
    run = subprocess.run([sys.executable, "-m", "tools.cam", "--help"], cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    for flag in ("--models", "--images", "--method", "--target", "--names", "--output"):
        assert flag in run.stdout, (flag, run.stderr[-2000:])
