"""Saving: `.keras` round trip in safe mode, SavedModel export, our files via load_pretrained."""

import json
import zipfile

import numpy as np
import pytest

from efficientnet_tf import EfficientNet, EfficientNetModel, StochasticDepth, architecture_of
from efficientnet_tf.weights import load_pretrained


def tiny(**kwargs):
    """A small custom variant (width and depth 0.25, 10 classes) that builds in a second."""
    return EfficientNet(0.25, 0.25, 48, classes=10, name="tiny", **kwargs)


@pytest.fixture(scope="module")
def trained(keras):
    """A tiny model with random batch-norm statistics and biases, as after training."""
    model = tiny()
    rng = np.random.default_rng(0)
    model.set_weights(
        [
            rng.normal(0.5, 0.3, w.shape).astype("float32") ** 2
            if "variance" in w.path
            else rng.normal(0, 0.3, w.shape).astype("float32")
            for w in model.weights
        ]
    )
    x = rng.uniform(0, 255, (3, 48, 48, 3)).astype("float32")
    return model, x, np.asarray(model(x, training=False))


def test_keras_file_round_trip_safe_mode(keras, trained, tmp_path):
    model, x, expected = trained
    assert np.abs(expected - expected.mean(axis=0)).max() > 1e-3  # inputs matter
    path = tmp_path / "tiny.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    # JSON spelling: the loaded config has lists where the built one has tuples.
    assert json.dumps(loaded.get_config(), sort_keys=True) == json.dumps(
        model.get_config(), sort_keys=True
    )
    np.testing.assert_array_equal(np.asarray(loaded(x, training=False)), expected)
    assert isinstance(loaded, EfficientNetModel)
    assert architecture_of(loaded) == architecture_of(model)
    assert architecture_of(loaded).width_coefficient == 0.25


def rewrite_config(source, target, edit) -> None:
    """Copies a .keras file, passing its config.json through `edit` (to forge an older file)."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for item in old.namelist():
            data = old.read(item)
            if item == "config.json":
                data = json.dumps(edit(json.loads(data))).encode()
            new.writestr(item, data)


def test_files_saved_before_the_record_and_the_renames_still_load(keras, trained, tmp_path):
    """A .keras file from before: a plain Functional model (no variant record) whose blocks say
    `drop_rate`, and a layer saved under the old class name DropConnect."""
    model, x, expected = trained
    keras.Model(model.input, model.output, name="tiny").save(tmp_path / "plain.keras")

    def old_blocks(config):
        for layer in config["config"]["layers"]:
            if layer["class_name"] == "MBConvBlock":
                layer["config"]["drop_rate"] = layer["config"].pop("stochastic_depth_rate")
        return config

    rewrite_config(tmp_path / "plain.keras", tmp_path / "old.keras", old_blocks)
    loaded = keras.models.load_model(tmp_path / "old.keras", safe_mode=True)
    assert architecture_of(loaded) is None  # legacy: weight loading may infer from shapes
    np.testing.assert_array_equal(np.asarray(loaded(x, training=False)), expected)
    rates = [layer.stochastic_depth_rate for layer in loaded.layers if hasattr(layer, "se")]
    assert rates == [layer.stochastic_depth_rate for layer in model.layers if hasattr(layer, "se")]

    inputs = keras.Input((4, 4, 2))
    keras.Model(inputs, StochasticDepth(0.3, name="sd")(inputs)).save(tmp_path / "sd.keras")

    def old_class_name(config):
        layer = config["config"]["layers"][1]
        layer["class_name"], layer["registered_name"] = "DropConnect", "efficientnet_tf>DropConnect"
        return config

    rewrite_config(tmp_path / "sd.keras", tmp_path / "dropconnect.keras", old_class_name)
    restored = keras.models.load_model(tmp_path / "dropconnect.keras", safe_mode=True)
    assert type(restored.get_layer("sd")) is StochasticDepth
    assert restored.get_layer("sd").rate == pytest.approx(0.3)


def test_export_saved_model_serves_like_predict(tf, trained, tmp_path):
    model, x, expected = trained
    path = str(tmp_path / "export")
    model.export(path, verbose=False)
    reloaded = tf.saved_model.load(path)  # keep a reference: it owns the variables
    served = reloaded.serve(tf.constant(x))
    np.testing.assert_allclose(np.asarray(served), model.predict(x, verbose=0), atol=1e-5, rtol=0)
    np.testing.assert_allclose(np.asarray(served), expected, atol=1e-5, rtol=0)


def test_load_pretrained_from_our_files(trained, tmp_path):
    model, x, expected = trained
    for name in ("tiny.keras", "tiny.weights.h5"):
        path = tmp_path / name
        if name.endswith(".keras"):
            model.save(path)
        else:
            model.save_weights(path)
        fresh = tiny()
        assert not np.allclose(np.asarray(fresh(x, training=False)), expected)
        load_pretrained(fresh, str(path))
        np.testing.assert_array_equal(np.asarray(fresh(x, training=False)), expected)
    with pytest.raises(ValueError, match="neither an existing file nor a published name"):
        load_pretrained(tiny(), str(tmp_path / "missing.weights.h5"))
