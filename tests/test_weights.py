"""Weight import: keras.applications models and files, reference TF checkpoints, published names.

The references are independent of our code: keras.applications EfficientNets (randomly
initialized, with random batch-norm statistics so that every variable matters) and checkpoints
that this file writes with the reference's variable names, spelled out here from the tensorflow/tpu
naming (REFERENCE.md 2.8), not taken from efficientnet_tf.
"""

import ast
import dataclasses
import hashlib
import os
import pathlib
import subprocess
import sys
import tarfile

import numpy as np
import pytest

import efficientnet_tf
from efficientnet_tf import weights as W
from efficientnet_tf.weights import published, tf_checkpoint

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
KERAS_APPS = {"b0": "EfficientNetB0", "b3": "EfficientNetB3"}
NATIVE = {"b0": 224, "b3": 300}
BN = ("gamma", "beta", "moving_mean", "moving_variance")
# A random keras.applications model computes x/255 (Normalization mean 0, variance 1).
PLAIN = {"normalization_mean": (0, 0, 0), "normalization_std": (1, 1, 1)}


def randomize(model, seed=0):
    """Random batch-norm statistics and biases: a fresh model has trivial ones."""
    import keras

    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            shape = layer.weights[0].shape
            layer.set_weights(
                [
                    rng.uniform(0.5, 1.5, shape),
                    rng.normal(0, 0.2, shape),
                    rng.normal(0, 0.2, shape),
                    rng.uniform(0.5, 1.5, shape),
                ]
            )
        elif getattr(layer, "use_bias", False) and layer.weights:
            kernel, bias = layer.get_weights()
            layer.set_weights([kernel, rng.normal(0, 0.1, bias.shape)])
    return model


def keras_app(keras, variant, size, **kwargs):
    kwargs.setdefault("classifier_activation", None)
    build = getattr(keras.applications, KERAS_APPS[variant])
    return randomize(build(weights=None, input_shape=(size, size, 3), **kwargs))


def images(size, n=2, seed=1):
    return np.random.default_rng(seed).uniform(0, 255, (n, size, size, 3)).astype("float32")


def run(model, x):
    """Inference with Keras' own batch-norm ops, so that a weight mapping is checked bit for
    bit (test_fused_inference_agrees_with_keras_applications covers the fused kernel)."""
    with efficientnet_tf.keras_computation():
        return np.asarray(model(x, training=False))


def set_imagenet_statistics(norm):
    """True ImageNet mean and variance in a keras Normalization layer."""
    count = norm.get_weights()[2]
    norm.set_weights([np.float32(IMAGENET_MEAN), np.square(np.float32(IMAGENET_STD)), count])
    norm.finalize_state()  # Keras 3 computes with tensors derived from the variables


def write_published_h5(model, path, imagenet_quirk=False):
    """Writes a weights-only file in the layout of the published keras.applications .h5 files
    (Keras 2: `layer_names` attribute, one group per layer, `weight_names` attribute). With
    `imagenet_quirk`, the Normalization 'variance' slot holds the std, as in those files."""
    import h5py

    with h5py.File(path, "w") as handle:
        handle.attrs["layer_names"] = [layer.name.encode() for layer in model.layers]
        handle.attrs["backend"] = b"tensorflow"
        handle.attrs["keras_version"] = b"2.4.0"
        for layer in model.layers:
            group = handle.create_group(layer.name)
            values = [np.asarray(w) for w in layer.weights]
            if imagenet_quirk and layer.name.startswith("normalization"):
                values[1] = np.sqrt(values[1])
            names = [f"{layer.name}/{w.name}:0" for w in layer.weights]
            group.attrs["weight_names"] = [n.encode() for n in names]
            for name, value in zip(names, values, strict=True):
                group.create_dataset(name, data=value)


def reference_names(keras_model, scope):
    """keras.applications layer -> reference TF variable names (tensorflow/tpu naming)."""
    blocks = sorted({x.name.split("_")[0] for x in keras_model.layers if x.name[:5] == "block"})
    fixed = {
        "stem_conv": ["stem/conv2d/kernel"],
        "stem_bn": [f"stem/tpu_batch_normalization/{v}" for v in BN],
        "top_conv": ["head/conv2d/kernel"],
        "top_bn": [f"head/tpu_batch_normalization/{v}" for v in BN],
        "predictions": ["head/dense/kernel", "head/dense/bias"],
    }
    names = {}
    for layer in keras_model.layers:
        if not layer.weights or layer.name.startswith(("normalization", "rescaling")):
            continue
        if layer.name in fixed:
            names[layer.name] = [f"{scope}/{n}" for n in fixed[layer.name]]
            continue
        block, part = layer.name.split("_", 1)
        has_expand = any(x.name == f"{block}_expand_conv" for x in keras_model.layers)
        if has_expand:
            scoped = {
                "expand_conv": "conv2d",
                "expand_bn": "tpu_batch_normalization",
                "bn": "tpu_batch_normalization_1",
                "project_conv": "conv2d_1",
                "project_bn": "tpu_batch_normalization_2",
            }
        else:
            scoped = {
                "bn": "tpu_batch_normalization",
                "project_conv": "conv2d",
                "project_bn": "tpu_batch_normalization_1",
            }
        scoped.update(
            {"dwconv": "depthwise_conv2d", "se_reduce": "se/conv2d", "se_expand": "se/conv2d_1"}
        )
        if part == "dwconv":
            leaves = ["depthwise_kernel"]
        elif part.endswith("bn"):
            leaves = list(BN)
        else:
            leaves = ["kernel", "bias"][: len(layer.weights)]
        index = blocks.index(block)
        names[layer.name] = [f"{scope}/blocks_{index}/{scoped[part]}/{leaf}" for leaf in leaves]
    return names


def perturb(value):
    return value * 1.5 + 0.05  # keeps variances positive


def write_checkpoint(tf, prefix, tensors):
    names = sorted(tensors)
    tf.raw_ops.SaveV2(
        prefix=str(prefix),
        tensor_names=names,
        shape_and_slices=[""] * len(names),
        tensors=[tf.constant(tensors[n]) for n in names],
    )


def checkpoint_tensors(keras_model, scope, ema=True):
    """EMA shadows hold the keras model's values, raw variables perturbed values; plus the
    optimizer slots and step counter a training checkpoint also has."""
    tensors = {"global_step": np.array(1000, np.int64)}
    for layer_name, names in reference_names(keras_model, scope).items():
        values = keras_model.get_layer(layer_name).get_weights()
        for name, value in zip(names, values, strict=True):
            tensors[name] = perturb(value).astype("float32")
            if name.endswith("stem/conv2d/kernel"):  # one optimizer slot as a distractor
                tensors[f"{name}/RMSProp"] = np.ones_like(value, "float32")
            if ema:
                tensors[f"{name}/ExponentialMovingAverage"] = value.astype("float32")
    return tensors


# ---------------------------------------------------------------------------------------------
# keras.applications equivalence


_KERAS_CACHE = {}


@pytest.fixture
def keras_model(keras):
    def get(variant, size):
        key = (variant, size)
        if key not in _KERAS_CACHE:
            _KERAS_CACHE[key] = keras_app(keras, variant, size)
        return _KERAS_CACHE[key]

    yield get


@pytest.mark.parametrize("variant,size", [("b0", 224), ("b0", 225), ("b3", 300), ("b3", 225)])
def test_keras_applications_model_equivalence(keras_model, variant, size):
    reference = keras_model(variant, size)
    ours = W.from_keras_applications(reference)
    assert ours.input_shape == (None, size, size, 3)
    x = images(size)
    expected = run(reference, x)
    assert np.abs(expected).max() > 0.05  # a live comparison, not zeros against zeros
    np.testing.assert_allclose(run(ours, x), expected, rtol=0, atol=1e-4)


def test_fused_inference_agrees_with_keras_applications(keras_model):
    """Our default inference path (TensorFlow's fused batch-norm kernel) rounds differently
    from Keras' ops, never by more than float32 noise over the whole network."""
    reference = keras_model("b3", 225)
    ours = W.from_keras_applications(reference)
    x = images(225)
    expected = run(reference, x)
    got = np.asarray(ours(x, training=False))
    scale = np.abs(expected).max()
    assert not np.array_equal(got, expected), "the fused kernel was not used"
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4 * scale)


def test_b3_weights_h5_file(keras_model, tmp_path):
    reference = keras_model("b3", 225)
    path = tmp_path / "efficientnetb3.weights.h5"
    reference.save_weights(path)
    ours = W.from_keras_applications(
        str(path), input_shape=(225, 225, 3), classifier_activation=None
    )
    assert ours.name == "efficientnetb3"
    x = images(225)
    np.testing.assert_allclose(run(ours, x), run(reference, x), rtol=0, atol=1e-4)


@pytest.fixture(scope="module")
def b0(keras, tmp_path_factory):
    """A 64 px keras.applications B0 with a 1000-class logits head, its output on two images
    and its weights in three file formats."""
    reference = keras_app(keras, "b0", 64)
    folder = tmp_path_factory.mktemp("b0")
    files = {
        "keras3": folder / "model.weights.h5",
        "published": folder / "efficientnetb0.h5",
        "full": folder / "full_model.h5",
    }
    reference.save_weights(files["keras3"])
    write_published_h5(reference, files["published"])
    reference.save(files["full"])  # legacy Keras 2 full-model file: weights plus model_config
    x = images(64)
    return reference, x, run(reference, x), files


@pytest.fixture(scope="module")
def b0_imagenet_notop(keras, tmp_path_factory):
    """A notop B0 normalizing with the ImageNet statistics, saved like the published file
    (whose 'variance' slot holds the std)."""
    reference = keras_app(keras, "b0", 64, include_top=False)
    norm = next(x for x in reference.layers if isinstance(x, keras.layers.Normalization))
    set_imagenet_statistics(norm)
    path = tmp_path_factory.mktemp("notop") / "efficientnetb0_notop.h5"
    write_published_h5(reference, path, imagenet_quirk=True)
    x = images(64)
    return reference, x, run(reference, x), path


def test_b0_file_formats(b0):
    _, x, expected, files = b0
    for kind in ("keras3", "published"):
        ours = W.from_keras_applications(
            files[kind], input_shape=(64, 64, 3), classifier_activation=None
        )
        np.testing.assert_allclose(run(ours, x), expected, rtol=0, atol=1e-4, err_msg=kind)
    # The full-model file also knows its input shape and logits head.
    ours = W.from_keras_applications(files["full"])
    assert ours.input_shape == (None, 64, 64, 3)
    np.testing.assert_allclose(run(ours, x), expected, rtol=0, atol=1e-4)


def test_published_normalization_quirk(b0_imagenet_notop):
    """Published files store the ImageNet std as 'variance'; the converted model must compute
    (x/255 - mean) / std like keras.applications with weights='imagenet' does."""
    _, x, expected, path = b0_imagenet_notop
    ours = W.from_keras_applications(path, input_shape=(64, 64, 3))
    np.testing.assert_allclose(ours.get_layer("normalization").std, IMAGENET_STD, rtol=1e-6)
    np.testing.assert_allclose(run(ours, x), expected, rtol=0, atol=1e-4)


def test_keras_imagenet_model_matches_published_layout(keras, b0_imagenet_notop, monkeypatch):
    """keras.applications itself, built with weights='imagenet' (which adds its #49930
    rescaling) from our published-layout file, agrees with it, and so does the conversion of
    that model object."""
    from keras.src.applications import efficientnet as keras_efficientnet

    _, x, expected, path = b0_imagenet_notop
    monkeypatch.setattr(keras_efficientnet.file_utils, "get_file", lambda *a, **k: str(path))
    imagenet = keras.applications.EfficientNetB0(
        weights="imagenet", include_top=False, input_shape=(64, 64, 3)
    )
    np.testing.assert_allclose(run(imagenet, x), expected, rtol=0, atol=1e-4)
    ours = W.from_keras_applications(imagenet)
    np.testing.assert_allclose(ours.get_layer("normalization").std, IMAGENET_STD, rtol=1e-6)
    np.testing.assert_allclose(run(ours, x), expected, rtol=0, atol=1e-4)


def test_pretrained_imagenet_from_cache(b0_imagenet_notop, tmp_path, monkeypatch):
    """'imagenet' picks the _notop file, looks in $KERAS_HOME/models, checks the md5."""
    _, x, expected, source = b0_imagenet_notop
    models = tmp_path / "models"
    models.mkdir()
    path = models / "efficientnetb0_notop.h5"
    path.write_bytes(source.read_bytes())
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setenv(published.OFFLINE_ENV, "1")
    model = efficientnet_tf.EfficientNetB0(include_top=False, input_shape=(64, 64, 3))

    # Our test file is not the published one: the md5 check must refuse it.
    with pytest.raises(ValueError, match="50bc09e76180e00e4465e1a485ddc09d") as error:
        W.load_pretrained(model, "imagenet:b0")
    assert str(path) in str(error.value)

    digest = hashlib.md5(path.read_bytes()).hexdigest()
    monkeypatch.setitem(published.KERAS_APPS_HASHES, "efficientnet-b0", ("0" * 32, digest))
    W.load_pretrained(model, "imagenet")  # the preset is the one the model records
    np.testing.assert_allclose(run(model, x), expected, rtol=0, atol=1e-4)


def test_offline_fetch_names_url_and_path(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setenv(published.OFFLINE_ENV, "1")
    with pytest.raises(FileNotFoundError) as error:
        efficientnet_tf.EfficientNetB0(weights="imagenet", input_shape=(32, 32, 3))
    message = str(error.value)
    assert "https://storage.googleapis.com/keras-applications/efficientnetb0.h5" in message
    assert os.path.join(str(tmp_path), "models", "efficientnetb0.h5") in message
    with pytest.raises(FileNotFoundError) as error:
        efficientnet_tf.create_model("b2", weights="noisy-student", input_shape=(32, 32, 3))
    assert "noisy_student_efficientnet-b2_extracted" in str(error.value)
    assert (
        "https://storage.googleapis.com/cloud-tpu-checkpoints/efficientnet/noisystudent/"
        "noisy_student_efficientnet-b2.tar.gz" in str(error.value)
    )


def test_published_weights_follow_the_recorded_variant_not_shapes(keras, tmp_path, monkeypatch):
    """'imagenet' without a preset takes the variant the model records; only a model that
    records none (saved before models recorded it) falls back to matching shapes."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setenv(published.OFFLINE_ENV, "1")
    # Width 1.001 rounds to B0's filters everywhere: B0's shapes, but not B0.
    b0_shaped = efficientnet_tf.EfficientNet(1.001, 1.0, 224, include_top=False,
                                             input_shape=(32, 32, 3))
    assert W.infer_preset(32, 1280, 16, "") == "efficientnet-b0"
    with pytest.raises(ValueError, match="custom variant .*no published weights"):
        W.load_pretrained(b0_shaped, "imagenet")

    model = efficientnet_tf.EfficientNetB0(include_top=False, input_shape=(32, 32, 3))
    model.architecture = dataclasses.replace(model.architecture, preset="efficientnet-b3")
    with pytest.raises(FileNotFoundError, match="efficientnetb3_notop.h5"):
        W.load_pretrained(model, "imagenet")  # the record, although the shapes say B0

    legacy = keras.Model(model.input, model.output)  # a plain Functional: no record
    assert efficientnet_tf.architecture_of(legacy) is None
    with pytest.raises(FileNotFoundError, match="efficientnetb0_notop.h5"):
        W.load_pretrained(legacy, "imagenet")


def test_failed_download_names_url_and_path(tmp_path, monkeypatch):
    """Without the offline switch a download is tried; a failure keeps the same advice."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.delenv(published.OFFLINE_ENV, raising=False)
    origin = (tmp_path / "nowhere").as_uri() + "/"  # a file:// URL that does not exist
    monkeypatch.setattr(published, "KERAS_APPS_ORIGIN", origin)
    with pytest.raises(FileNotFoundError) as error:
        efficientnet_tf.EfficientNetB0(weights="imagenet", input_shape=(32, 32, 3))
    assert f"Could not download {origin}efficientnetb0.h5" in str(error.value)
    assert os.path.join(str(tmp_path), "models", "efficientnetb0.h5") in str(error.value)


def test_published_names_errors():
    with pytest.raises(ValueError, match="efficientnet-b0, .*efficientnet-b7"):
        W.published_weights("imagenet", "l2", include_top=True)
    with pytest.raises(ValueError, match="'imagenet', 'noisy-student'"):
        efficientnet_tf.create_model("b0", input_shape=(32, 32, 3), weights="imagenett")
    with pytest.raises(ValueError, match="1000-class classifier, the model has 10"):
        efficientnet_tf.create_model("b0", input_shape=(32, 32, 3), classes=10, weights="imagenet")


def test_normalization_mismatch_is_refused(b0):
    _, _, _, files = b0  # a random keras.applications model computes x/255 only
    with pytest.raises(ValueError, match=r"normalization_mean=\[0.0, 0.0, 0.0\]"):
        efficientnet_tf.create_model("b0", input_shape=(64, 64, 3), weights=str(files["keras3"]))


def test_mismatched_weights_name_layer_and_shapes(b0):
    _, _, _, files = b0
    path = str(files["published"])
    with pytest.raises(ValueError) as error:
        efficientnet_tf.create_model("b0", input_shape=(64, 64, 3), classes=10, weights=path)
    message = str(error.value)
    assert "predictions" in message and "(1280, 1000)" in message and "(1280, 10)" in message
    # B1 is deeper (two blocks in stage 1): the first layer B0 weights lack is named.
    with pytest.raises(
        ValueError, match="no layer 'block1b_dwconv' for model layer 'block1b/dwconv'"
    ):
        efficientnet_tf.create_model("b1", input_shape=(64, 64, 3), weights=path, **PLAIN)


# ---------------------------------------------------------------------------------------------
# Reference TF checkpoints


@pytest.fixture(scope="module")
def checkpoint(tf, b0, tmp_path_factory):
    """A B0 reference checkpoint and the keras.applications model it encodes."""
    reference = b0[0]
    tensors = checkpoint_tensors(reference, "efficientnet-b0")
    root = tmp_path_factory.mktemp("ckpt")
    folder = root / "noisy-student-efficientnet-b0"
    folder.mkdir()
    prefix = folder / "model.ckpt"
    write_checkpoint(tf, prefix, tensors)
    (folder / "checkpoint").write_text('model_checkpoint_path: "model.ckpt"\n')
    return reference, tensors, prefix


def test_tf_checkpoint_ema(checkpoint):
    reference, tensors, prefix = checkpoint
    ours = W.from_tf_checkpoint(
        prefix, "efficientnet-b0", input_shape=(64, 64, 3), classifier_activation=None, **PLAIN
    )
    kernel = ours.get_layer("block2a").expand_conv.kernel
    ema = tensors["efficientnet-b0/blocks_1/conv2d/kernel/ExponentialMovingAverage"]
    np.testing.assert_array_equal(np.asarray(kernel), ema)
    x = images(64)
    np.testing.assert_allclose(run(ours, x), run(reference, x), rtol=0, atol=1e-4)


def test_tf_checkpoint_raw(keras, checkpoint):
    reference, tensors, prefix = checkpoint
    ours = W.from_tf_checkpoint(
        str(prefix.parent),
        use_ema=False,
        input_shape=(64, 64, 3),
        classifier_activation=None,
        **PLAIN,
    )
    raw = keras_app(keras, "b0", 64)
    for source, target in zip(reference.layers, raw.layers, strict=True):
        if source.weights and not isinstance(source, keras.layers.Normalization):
            target.set_weights([perturb(w) for w in source.get_weights()])
    dwconv = np.asarray(ours.get_layer("block1a").dwconv.kernel)
    np.testing.assert_array_equal(
        dwconv, tensors["efficientnet-b0/blocks_0/depthwise_conv2d/depthwise_kernel"]
    )
    x = images(64)
    np.testing.assert_allclose(run(ours, x), run(raw, x), rtol=0, atol=1e-4)


def test_tf_mapping_is_pure_and_strict(checkpoint):
    """The name mapping runs on a plain dict and refuses missing or surplus variables."""
    reference, tensors, _ = checkpoint
    model = efficientnet_tf.create_model("b0", input_shape=(64, 64, 3), **PLAIN)
    W.load_tf_arrays(model, dict(tensors), "efficientnet-b0")
    np.testing.assert_array_equal(
        np.asarray(model.get_layer("top_bn").moving_variance),
        tensors[
            "efficientnet-b0/head/tpu_batch_normalization/moving_variance/ExponentialMovingAverage"
        ],
    )
    surplus = dict(tensors)
    surplus["efficientnet-b0/blocks_16/conv2d/kernel"] = np.zeros((1, 1, 320, 1920), "float32")
    with pytest.raises(ValueError, match="blocks_16"):
        W.load_tf_arrays(model, surplus, "efficientnet-b0")
    missing = dict(tensors)
    del missing["efficientnet-b0/blocks_3/se/conv2d_1/bias/ExponentialMovingAverage"]
    with pytest.raises(ValueError, match=r"blocks_3/se/conv2d_1/bias.*'block3a/se/expand'"):
        W.load_tf_arrays(model, missing, "efficientnet-b0")
    with pytest.raises(ValueError, match="use_ema=False"):
        W.load_tf_arrays(
            model, {k: v for k, v in tensors.items() if "Exponential" not in k}, "efficientnet-b0"
        )
    ten = efficientnet_tf.create_model("b0", input_shape=(64, 64, 3), classes=10, **PLAIN)
    with pytest.raises(
        ValueError, match=r"head/dense/kernel.*\(1280, 1000\).*'predictions'.*\(1280, 10\)"
    ):
        W.load_tf_arrays(ten, dict(tensors), "efficientnet-b0")


def test_tf_checkpoint_scopes(tf, checkpoint, tmp_path):
    """A google-research/noisystudent student checkpoint also holds the teacher's variables
    under 'teacher_model/': the scope must then be chosen explicitly."""
    reference, tensors, _ = checkpoint
    both = {k: v for k, v in tensors.items() if k.endswith("ExponentialMovingAverage")}
    both["teacher_model/efficientnet-b0/stem/conv2d/kernel"] = np.zeros((3, 3, 3, 32), "float32")
    prefix = tmp_path / "student.ckpt"
    write_checkpoint(tf, prefix, both)
    with pytest.raises(ValueError, match="teacher_model/efficientnet-b0"):
        W.from_tf_checkpoint(prefix, input_shape=(64, 64, 3))
    ours = W.from_tf_checkpoint(
        prefix,
        "b0",
        scope="efficientnet-b0",
        input_shape=(64, 64, 3),
        classifier_activation=None,
        **PLAIN,
    )
    x = images(64)
    np.testing.assert_allclose(run(ours, x), run(reference, x), rtol=0, atol=1e-4)


def test_pretrained_noisy_student_archive(checkpoint, tmp_path, monkeypatch):
    reference, _, prefix = checkpoint
    models = tmp_path / "models"
    models.mkdir()
    archive_path = models / "noisy_student_efficientnet-b0.tar.gz"
    with tarfile.open(archive_path, "w:gz", compresslevel=1) as archive:
        archive.add(prefix.parent, arcname="noisy-student-efficientnet-b0")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setenv(published.OFFLINE_ENV, "1")
    ours = efficientnet_tf.EfficientNetB0(
        weights="noisy-student", input_shape=(64, 64, 3), classifier_activation=None, **PLAIN
    )
    x = images(64)
    np.testing.assert_allclose(run(ours, x), run(reference, x), rtol=0, atol=1e-4)


def test_missing_tensorflow_gives_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow", None)  # makes `import tensorflow` fail
    with pytest.raises(ImportError, match="needs TensorFlow: pip install tensorflow"):
        tf_checkpoint.open_tf_checkpoint("/nonexistent/model.ckpt")


def test_model_code_has_no_module_level_tensorflow_import():
    package = pathlib.Path(efficientnet_tf.__file__).parent
    for path in package.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in tree.body:  # module level only; lazy imports inside functions are fine
            for inner in ast.walk(node):
                if isinstance(inner, ast.FunctionDef | ast.AsyncFunctionDef):
                    break
                if isinstance(inner, ast.Import | ast.ImportFrom):
                    names = [a.name for a in inner.names] + [getattr(inner, "module", "") or ""]
                    assert not any(n.split(".")[0] == "tensorflow" for n in names), path


def test_missing_checkpoint_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="model.ckpt.index"):
        W.from_tf_checkpoint(tmp_path / "model.ckpt")


# ---------------------------------------------------------------------------------------------
# noisy_student.cli.convert_weights (python -m tools.convert_weights)


def test_convert_tool_writes_atomically(keras, b0, checkpoint, tmp_path):
    from noisy_student.cli import convert_weights

    _, x, expected, files = b0
    _, tensors, prefix = checkpoint
    output = tmp_path / "out" / "b0.keras"
    subprocess.run(
        [sys.executable, "-m", "tools.convert_weights", f"--source={prefix}", f"--output={output}"],
        check=True, capture_output=True, timeout=300,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    )
    assert sorted(os.listdir(output.parent)) == ["b0.keras"]  # no temporary left behind
    loaded = keras.models.load_model(output)
    np.testing.assert_array_equal(
        np.asarray(loaded.get_layer("stem_conv").kernel),
        tensors["efficientnet-b0/stem/conv2d/kernel/ExponentialMovingAverage"],
    )

    weights_only = tmp_path / "b0.weights.h5"
    convert_weights.convert(str(files["published"]), str(weights_only), classifier_activation=None)
    ours = efficientnet_tf.create_model(
        "b0",
        input_shape=(64, 64, 3),
        classifier_activation=None,
        weights=str(weights_only),
        **PLAIN,
    )
    np.testing.assert_allclose(run(ours, x), expected, rtol=0, atol=1e-4)
    with pytest.raises(ValueError, match=r"\.keras or \.weights\.h5"):
        convert_weights.convert(str(files["published"]), str(tmp_path / "x.h5"))
