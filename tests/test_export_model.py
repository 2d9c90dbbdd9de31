"""Deployment export: every format is written and predicts like the Keras model; int8 is really
integer; a format that fails is reported, not fatal; bad input names the file."""

import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from tiny_models import make_model_fn

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NUM_IMAGES = 16


@pytest.fixture(scope="module")
def data(tmp_path_factory, tf):
    """The first 16 bundled validation images as one TFRecord file (1-based labels)."""
    from data_helpers import encode, sample_pixels

    from noisy_student.data import records

    folder = tmp_path_factory.mktemp("data")
    images, labels = sample_pixels(NUM_IMAGES)
    with tf.io.TFRecordWriter(str(folder / "validation-00000-of-00001")) as writer:
        for pixels, label in zip(images, labels, strict=True):
            writer.write(records.encode_labeled(encode(pixels), int(label) + 1))
    return str(folder / "validation-*")


@pytest.fixture(scope="module")
def model_file(tmp_path_factory, keras):
    """A tiny small-image B0 (logits) saved as .keras, and its Keras model."""
    from noisy_student.training import save_model

    model = make_model_fn(keras, seed=5, small_images=True)()
    path = str(tmp_path_factory.mktemp("model") / "tiny.keras")
    save_model(model, path)
    return path, model


def _export(path, output_dir, **kwargs):
    from noisy_student.cli import export_model

    options = dict(small_images=True, latency_runs=2, batch_size=8, threads=1,
                   representative_examples=NUM_IMAGES)
    return export_model.export(path, str(output_dir), **{**options, **kwargs})


def _keras_top1(model):
    """Top-1 of `model.predict` on Pillow-decoded images: independent of the code under test."""
    from data_helpers import sample_pixels

    images, labels = sample_pixels(NUM_IMAGES)
    return float((model.predict(images.astype("float32"), verbose=0).argmax(1) == labels).mean())


def test_tflite_and_saved_model_predict_like_keras(model_file, data, tmp_path):
    from noisy_student.export import artifacts, deploy

    path, model = model_file
    out = tmp_path / "deploy"
    report = _export(path, out, data=data,
                     formats=["keras", "saved_model", "tflite_float", "tflite_int8"])
    rows = report["formats"]
    assert sorted(os.listdir(out)) == sorted([
        "model.keras", "saved_model", "model_float.tflite", "model_int8.tflite",
        "export_report.json", "export_report.md"])  # no temp files left
    assert json.loads((out / "export_report.json").read_text())["formats"].keys() == rows.keys()
    assert rows["keras"]["top1"] == pytest.approx(_keras_top1(model))
    for name in ("saved_model", "tflite_float"):
        assert rows[name]["num_examples"] == NUM_IMAGES
        assert rows[name]["agreement"] == 1.0, name
        assert rows[name]["max_abs_diff"] < 1e-4, name
        assert rows[name]["top1"] == rows["keras"]["top1"], name
    int8 = rows["tflite_int8"]
    assert int8["note"] is None and 0 < int8["max_abs_diff"] < 0.1
    assert int8["calibration_images"] == NUM_IMAGES and int8["activations"] == "int8"
    assert int8["calibration"] == report["int8_calibration"] == "percentile 99.99"
    assert int8["float_stages"] == 1 and int8["weights"]["float"] == 0  # one stage: no later one
    assert int8["weights"]["per_tensor"] == 0 and int8["weights"]["per_channel"] > 0
    # What each file returns, from the one table (the tiny model outputs logits).
    assert {name: row["returns"] for name, row in rows.items()} == {
        "keras": "logits", "saved_model": "probabilities", "tflite_float": "logits",
        "tflite_int8": "logits"}
    assert rows["saved_model"]["signatures"] == list(artifacts.SIGNATURES)
    assert artifacts.markdown_table(list(rows)) in (out / "export_report.md").read_text()
    assert int8["agreement"] >= 0.5  # probabilities near 0.1 each: a few argmax flips are fine
    for name, row in rows.items():
        assert row["size_bytes"] > 0 and row["latency_ms"] > 0, name
        assert f"| {name} |" in (out / "export_report.md").read_text()
    # The int8 file holds int8 weights (a float model would hold none).
    interpreter = deploy.tflite_interpreter(model_path=str(out / "model_int8.tflite"))
    dtypes = {d["dtype"] for d in interpreter.get_tensor_details()}
    assert np.int8 in dtypes
    floats = deploy.tflite_interpreter(model_path=str(out / "model_float.tflite"))
    assert np.int8 not in {d["dtype"] for d in floats.get_tensor_details()}


def test_int8_with_integer_input_and_output(model_file):
    """uint8 I/O (integer-only accelerators): the predictor quantizes pixels, dequantizes
    outputs, and the logits stay close to Keras."""
    from noisy_student.export import deploy

    _, model = model_file
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (8, 32, 32, 3)).astype("float32")
    content = deploy.tflite_bytes(model, quantize=True, representative=[images],
                                  int8_io="uint8")
    runner = deploy.TFLitePredictor(content)
    assert runner.input["dtype"] == np.uint8 and runner.output["dtype"] == np.uint8
    logits = np.asarray(model(images, training=False))
    np.testing.assert_allclose(runner(images), logits, atol=0.1 * np.abs(logits).max() + 0.02)


def test_tflite_runs_without_litert(model_file, monkeypatch):
    """LiteRT's interpreter is used when installed (the test extra installs it); without
    ai-edge-litert the predictor falls back to tf.lite.Interpreter, same outputs."""
    import tensorflow as tf

    from noisy_student.export import deploy

    _, model = model_file
    images = np.random.default_rng(1).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    content = deploy.tflite_bytes(model)
    runner = deploy.TFLitePredictor(content)
    if importlib.util.find_spec("ai_edge_litert") is not None:
        from ai_edge_litert.interpreter import Interpreter

        assert isinstance(runner.interpreter, Interpreter)
    preferred = runner(images)
    monkeypatch.setitem(sys.modules, "ai_edge_litert", None)  # import now raises ImportError
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)
    fallback = deploy.TFLitePredictor(content)
    assert isinstance(fallback.interpreter, tf.lite.Interpreter)
    np.testing.assert_allclose(fallback(images), preferred, atol=1e-5)
    np.testing.assert_allclose(preferred, np.asarray(model(images, training=False)), atol=1e-4)


def test_onnx_predicts_like_keras(model_file, data, tmp_path):
    for package in ("tf2onnx", "onnxruntime"):
        if importlib.util.find_spec(package) is None:
            pytest.skip(f"{package} is not installed (pip install -e .[export])")
    path, _ = model_file
    report = _export(path, tmp_path / "deploy", data=data, formats=["onnx"])
    onnx = report["formats"]["onnx"]
    assert onnx["note"] is None, onnx["note"]
    assert onnx["agreement"] == 1.0 and onnx["max_abs_diff"] < 1e-4
    assert onnx["top1"] == report["formats"]["keras"]["top1"]
    assert (tmp_path / "deploy" / "model.onnx").stat().st_size == onnx["size_bytes"]


def test_failures_are_reported_not_fatal(model_file, tmp_path, monkeypatch):
    """A converter error or a missing package becomes a note in the table; a stale file of
    that format from an earlier export is removed; int8 without images is skipped."""
    from noisy_student.export import deploy

    path, _ = model_file
    out = tmp_path / "deploy"
    out.mkdir()
    (out / "model.onnx").write_bytes(b"stale")

    def broken(*args, **kwargs):
        raise RuntimeError("unsupported op Foo\nlong trace")

    monkeypatch.setattr(deploy, "onnx_bytes", broken)
    report = _export(path, out, formats=["onnx", "tflite_int8"], latency_runs=0)
    rows = report["formats"]
    assert rows["onnx"]["note"] == "conversion failed: RuntimeError: unsupported op Foo"
    assert rows["tflite_int8"]["note"].startswith("skipped: int8 quantization needs "
                                                  "representative images")
    assert rows["keras"]["note"] is None
    assert not (out / "model.onnx").exists()
    assert "conversion failed" in (out / "export_report.md").read_text()

    def missing(*args, **kwargs):
        raise deploy.MissingDependency("tf2onnx is not installed (pip install -e .[export])")

    monkeypatch.setattr(deploy, "onnx_bytes", missing)
    report = _export(path, out, formats=["onnx"], latency_runs=0)
    assert report["formats"]["onnx"]["note"] == (
        "skipped: tf2onnx is not installed (pip install -e .[export])")


def test_bad_input_names_the_problem(model_file, data, tmp_path):
    path, _ = model_file
    with pytest.raises(FileNotFoundError, match="missing.keras"):
        _export(str(tmp_path / "missing.keras"), tmp_path / "out")
    with pytest.raises(FileNotFoundError, match="nothing-here"):
        _export(path, tmp_path / "out", data=data, formats=["tflite_int8"],
                representative_data=str(tmp_path / "nothing-here-*"))
    with pytest.raises(ValueError, match="unknown --formats"):
        _export(path, tmp_path / "out", formats=["tflite_fp16"])


def test_export_help_explains_the_flags():
    run = subprocess.run([sys.executable, "-m", "tools.export_model", "--help"], cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    for flag in ("--model", "--formats", "--data", "--representative_data", "--int8_io",
                 "--int8_activations", "--int8_calibration", "--int8_percentile",
                 "--int8_float_stages",
                 "--latency_runs", "--threads"):
        assert flag in run.stdout, (flag, run.stderr[-2000:])
    from noisy_student.export.artifacts import text_table

    assert text_table() in run.stdout  # every signature and file, logits or probabilities


# A fresh process in which our packages cannot be imported (as if not installed): loads the
# deployment .keras with Keras alone and saves its predictions.
LOAD_WITH_KERAS_ONLY = """
import sys
sys.modules["efficientnet_tf"] = sys.modules["noisy_student"] = None  # import fails
import numpy as np, keras
model = keras.saving.load_model(sys.argv[1])
np.save(sys.argv[3], model.predict(np.load(sys.argv[2]), verbose=0))
print(sorted({type(layer).__module__.split(".")[0] for layer in model.layers}))
"""


def test_deployment_keras_file_loads_with_keras_alone(tmp_path, keras):
    """deploy/model.keras is made of built-in Keras layers: a process without our packages
    opens it and predicts within 1e-5 of our model (the run's own .keras cannot be opened
    there)."""
    from efficientnet_tf import create_model
    from noisy_student.training import save_model

    keras.utils.set_random_seed(7)  # every B0 stage (expansion, skips, SE) at a tiny size
    model = create_model("b0", classes=10, small_images=True, width_coefficient=0.25,
                         depth_coefficient=0.5, input_shape=(32, 32, 3),
                         classifier_activation=None)
    assert any(layer.has_skip for layer in model.layers if hasattr(layer, "has_skip"))
    for weight in model.weights:  # BN statistics and scales away from 0/1 make the check bite
        if weight.path.endswith(("moving_mean", "moving_variance", "gamma", "beta")):
            weight.assign(np.random.default_rng(len(weight.path)).uniform(
                0.5, 1.5, weight.shape).astype("float32"))
    path = save_model(model, str(tmp_path / "trained.keras"))
    _export(path, tmp_path / "deploy", formats=["keras"], latency_runs=0)
    images = np.random.default_rng(1).uniform(0, 255, (6, 32, 32, 3)).astype("float32")
    np.save(tmp_path / "images.npy", images)
    expected = model.predict(images, verbose=0)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}

    def load(keras_file):
        return subprocess.run(
            [sys.executable, "-c", LOAD_WITH_KERAS_ONLY, str(keras_file),
             str(tmp_path / "images.npy"), str(tmp_path / "out.npy")],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)

    run = load(tmp_path / "deploy" / "model.keras")
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.splitlines()[-1] == "['keras']"
    assert np.abs(np.load(tmp_path / "out.npy") - expected).max() < 1e-5
    assert load(path).returncode != 0  # the training-side file names our layer classes


def test_int8_weights_are_per_channel(model_file):
    """Every convolution, depthwise convolution and dense weight of the int8 file has one scale
    per output channel (TFLite's default, set explicitly); per_channel=False shows the count
    tells the difference. int16 activations keep per-channel int8 weights."""
    from noisy_student.export import deploy

    _, model = model_file
    images = [np.random.default_rng(2).uniform(0, 255, (8, 32, 32, 3)).astype("float32")]
    counts = deploy.weight_quantization(
        deploy.tflite_bytes(model, quantize=True, representative=images))
    import keras

    from efficientnet_tf.portable import portable_model

    weighted = [layer for layer in portable_model(model).layers
                if isinstance(layer, keras.layers.Conv2D | keras.layers.DepthwiseConv2D
                              | keras.layers.Dense)]
    assert counts == {"per_channel": len(weighted), "per_tensor": 0, "float": 0}
    per_tensor = deploy.weight_quantization(
        deploy.tflite_bytes(model, quantize=True, representative=images, per_channel=False))
    assert per_tensor == {"per_channel": 0, "per_tensor": counts["per_channel"], "float": 0}
    content = deploy.tflite_bytes(model, quantize=True, representative=images,
                                  activations="int16")
    assert deploy.weight_quantization(content) == counts
    dtypes = {d["dtype"] for d in deploy.tflite_interpreter(
        model_content=content).get_tensor_details()}
    assert np.int16 in dtypes
    dynamic = deploy.tflite_bytes(model, quantize=True, activations="float")  # no calibration
    assert deploy.weight_quantization(dynamic)["per_channel"] > 0
    with pytest.raises(ValueError, match="int16 activations keep float input"):
        deploy.tflite_bytes(model, quantize=True, representative=images,
                            activations="int16", int8_io="uint8")


def _activation_ranges(content):
    """name -> (lowest, highest) representable value of every int8 activation tensor."""
    from noisy_student.export import deploy

    ranges = {}
    for d in deploy.tflite_interpreter(model_content=content).get_tensor_details():
        scale, zero = d["quantization"]
        if d["dtype"] == np.int8 and scale > 0 and d["quantization_parameters"]["scales"].size == 1:
            ranges[d["name"]] = ((-128 - zero) * scale, (127 - zero) * scale)
    return ranges


def test_int8_percentile_calibration_narrows_activation_ranges(model_file):
    """--int8_calibration=percentile (the default): every int8 activation range of the file is
    inside TFLite's min/max one (a range is clipped, never widened) and some are strictly
    narrower; minmax is TFLite's own; the report and the export name the calibration."""
    from noisy_student.export import deploy

    _, model = model_file
    images = [np.random.default_rng(3).uniform(0, 255, (16, 32, 32, 3)).astype("float32")]
    minmax = _activation_ranges(deploy.tflite_bytes(model, quantize=True, representative=images,
                                                    calibration="minmax"))
    clipped = _activation_ranges(deploy.tflite_bytes(model, quantize=True,
                                                     representative=images, percentile=99.0))
    assert clipped.keys() == minmax.keys() and len(minmax) > 20
    step = {name: (high - low) / 255 for name, (low, high) in minmax.items()}
    for name, (low, high) in clipped.items():  # zero-point rounding moves an end by < 1 step
        assert low >= minmax[name][0] - step[name] and high <= minmax[name][1] + step[name], name
    narrower = [n for n, (low, high) in clipped.items() if high - low < 0.9 * 255 * step[n]]
    assert len(narrower) > len(clipped) // 4, narrower
    assert deploy.calibration_name("int8") == "percentile 99.99"
    assert deploy.calibration_name("int8", "minmax") == deploy.calibration_name(
        "int8", "percentile", 100) == deploy.calibration_name("int16") == "minmax"
    assert deploy.calibration_name("float") is None
    with pytest.raises(ValueError, match="calibration must be one of"):
        deploy.tflite_bytes(model, quantize=True, representative=images, calibration="mse")
    with pytest.raises(ValueError, match="percentile must be in"):
        deploy.tflite_bytes(model, quantize=True, representative=images, percentile=0.9999)


def test_clip_activation_ranges_is_the_exact_percentile(model_file):
    """Each clipped range ends at the order statistic of that tensor's values on the
    calibration images (at most 1 - p of them above the top, at least that many at or above
    it), or at TFLite's own end when that is nearer; graph inputs keep their range."""
    import contextlib
    import io

    import tensorflow as tf

    from efficientnet_tf.portable import portable_model
    from noisy_student.export import deploy
    from noisy_student.export import tflite as tflite_export

    _, model = model_file
    images = np.random.default_rng(4).uniform(0, 255, (12, 32, 32, 3)).astype("float32")
    converter = tf.lite.TFLiteConverter.from_keras_model(portable_model(model))
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([image[None]] for image in images)
    converter._experimental_calibrate_only = True
    with contextlib.redirect_stdout(io.StringIO()):
        calibrated = converter.convert()
    clipped = tflite_export.clip_activation_ranges(calibrated, [images[:5], images[5:]], 90.0)

    def recorded(content):
        from tensorflow.lite.tools import flatbuffer_utils

        graph = flatbuffer_utils.convert_bytearray_to_object(bytearray(content)).subgraphs[0]
        return {i: (float(t.quantization.min[0]), float(t.quantization.max[0]))
                for i, t in enumerate(graph.tensors) if t.quantization is not None
                and t.quantization.min is not None and len(t.quantization.min) == 1}

    before, after = recorded(calibrated), recorded(clipped)
    assert before.keys() == after.keys()
    interpreter = deploy.tflite_interpreter(model_content=calibrated,
                                            experimental_preserve_all_tensors=True)
    index = interpreter.get_input_details()[0]["index"]
    assert after[index] == before[index]  # the input keeps 0..255
    interpreter.resize_tensor_input(index, list(images.shape))
    interpreter.allocate_tensors()
    interpreter.set_tensor(index, images)
    interpreter.invoke()
    checked = 0
    for i, (low, high) in after.items():
        if i == index:
            continue
        values = interpreter.get_tensor(i).ravel()
        assert before[i][0] <= low <= high <= before[i][1]
        if high < before[i][1]:
            assert np.mean(values > high) <= 0.1 <= np.mean(values >= high), i
            checked += 1
        if low > before[i][0]:
            assert np.mean(values < low) <= 0.1 <= np.mean(values <= low), i
    assert checked > len(after) // 2


def test_int8_float_stages_keep_the_stem_and_first_stage_float(keras):
    """int8_float_stages (default 1): with float input the stem and stage 1 run in float and
    everything from stage 2 on is int8; 0, or integer input/output, is all int8; a model
    without a later stage stays all int8."""
    from tiny_models import ONE_BLOCK

    from noisy_student.export import deploy

    model = make_model_fn(keras, seed=6, small_images=True,
                          blocks=(*ONE_BLOCK, "r1_k3_s22_e6_i16_o24_se0.25"))()
    images = [np.random.default_rng(5).uniform(0, 255, (8, 32, 32, 3)).astype("float32")]

    def weighted_ops(content):
        """(op, weight dtype) of the convolutions and dense layers, in execution order."""
        interpreter = deploy.tflite_interpreter(model_content=content)
        tensors = {d["index"]: d for d in interpreter.get_tensor_details()}
        return [(op["op_name"], tensors[int(op["inputs"][1])]["dtype"])
                for op in interpreter._get_ops_details()
                if op["op_name"] in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")]

    mixed = weighted_ops(deploy.tflite_bytes(model, quantize=True, representative=images))
    # stem conv, block1a: depthwise, SE reduce, SE expand, project; then block2a, head: int8
    assert [dtype for _, dtype in mixed[:5]] == [np.float32] * 5, mixed
    assert [dtype for _, dtype in mixed[5:]] == [np.int8] * (len(mixed) - 5), mixed
    for options in ({"float_stages": 0}, {"int8_io": "uint8"}, {"float_stages": 2}):
        content = deploy.tflite_bytes(model, quantize=True, representative=images, **options)
        assert {dtype for _, dtype in weighted_ops(content)} == {np.int8}, options
        assert deploy.weight_quantization(content)["float"] == 0
    assert deploy.weight_quantization(deploy.tflite_bytes(
        model, quantize=True, representative=images))["float"] == 5
    with pytest.raises(ValueError, match="float_stages must be >= 0"):
        deploy.tflite_bytes(model, quantize=True, representative=images, float_stages=-1)


def test_int8_warnings_name_the_shortfall():
    from noisy_student.export.tflite import int8_warnings

    def rows(agreement, top1):
        return {"keras": {"top1": 0.70},
                "tflite_int8": {"agreement": agreement, "top1": top1, "num_examples": 10000}}

    assert int8_warnings(rows(0.97, 0.69)) == []  # the thresholds themselves pass
    assert int8_warnings({"keras": {"top1": None}, "tflite_int8": {"note": "skipped"}}) == []
    low = int8_warnings(rows(0.9699, 0.70))
    assert len(low) == 1 and "agrees with the float model on 96.99% of 10000 images" in low[0]
    assert "--int8_activations=float" in low[0]
    drop = int8_warnings(rows(0.99, 0.6889))
    assert len(drop) == 1 and "top-1 68.89% is more than 1% below the float model's 70.00%" in (
        drop[0])


def test_export_warns_when_int8_disagrees(model_file, data, tmp_path, monkeypatch):
    """The export reports the int8 warning (progress, report, export_report.md); here the bar
    is raised above 100% so the tiny model cannot pass it."""
    from noisy_student.export import tflite

    monkeypatch.setattr(tflite, "MIN_AGREEMENT", 1.01)
    messages = []
    path, _ = model_file
    report = _export(path, tmp_path / "deploy", data=data, formats=["tflite_int8"],
                     latency_runs=0, progress=messages.append)
    assert len(report["warnings"]) == 1 and "tflite_int8 agrees with the float model on" in (
        report["warnings"][0])
    assert f"WARNING: {report['warnings'][0]}" in messages
    assert "**Warning**: tflite_int8 agrees" in (tmp_path / "deploy" / "export_report.md"
                                                 ).read_text()
    monkeypatch.setattr(tflite, "MIN_AGREEMENT", 0.0)
    assert _export(path, tmp_path / "deploy", data=data, formats=["tflite_int8"],
                   latency_runs=0)["warnings"] == []


def test_readme_and_demo_print_the_one_artifact_table(monkeypatch, capsys, tmp_path):
    """README's list of artifacts is noisy_student.export.artifacts' table, and the demo's last line
    names every SavedModel signature and what they return."""
    import re
    import types

    from noisy_student.cli import demo
    from noisy_student.cli import main as main_module
    from noisy_student.cli import runner as cli
    from noisy_student.export import artifacts

    readme = open(os.path.join(REPO, "README.md"), encoding="utf-8").read()
    block = re.search(r"<!-- artifacts:[^\n]*-->\n(.*?)\n<!-- /artifacts -->", readme, re.S)
    assert block and block.group(1) == artifacts.markdown_table(), (
        "README's artifact table is stale: paste `python -m noisy_student.export.artifacts`")

    monkeypatch.setattr(demo, "FLAGS", types.SimpleNamespace(
        run_dir=str(tmp_path), iteration=None, traceback=False, verbose=False))
    monkeypatch.setattr(main_module, "validate_or_exit", lambda program, argv: None)
    monkeypatch.setattr(cli, "run_or_exit", lambda program, function, traceback: {
        "stages": {"export": {"export_dir": "RUN/export"}}})
    monkeypatch.setattr(demo, "plot", lambda run_dir, rows, path: path)
    demo.main(["noisy-student-demo"])
    last = capsys.readouterr().out.splitlines()[-1]
    assert last == f"SavedModel ({artifacts.saved_model_line()}): RUN/export"
    assert all(name in last for name in artifacts.SIGNATURES) and "probabilities" in last
