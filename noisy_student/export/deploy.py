"""Deployment formats of a trained classifier, checked against the Keras model.

Formats (every predictor maps float RGB images [B, S, S, 3] in 0..255 to probabilities):

* ``keras``: ``model.keras``, a copy of the model made only of Keras' own layers
  (``efficientnet_tf.portable``): ``keras.saving.load_model`` opens it in any process with
  Keras, without this package. It must predict within ``PORTABLE_TOLERANCE`` of the model, and
  it is the reference of the comparisons. (The run's ``teacher/model.keras`` and
  ``iterN/student/model.keras`` and the checkpoints keep our layers and need
  ``efficientnet_tf`` imported.)
* ``saved_model``: ``noisy_student.export.saved_model`` (the signatures of
  ``noisy_student.export.artifacts``).
* ``tflite_float``: TFLite, float32 weights and activations.
* ``tflite_int8``: TFLite post-training full-integer quantization (per-channel int8 weights,
  int8 activations calibrated on representative images, their ranges clipped to the 99.99th
  percentile by default: ``int8_calibration``, ``int8_percentile``; with float input the stem
  and first stage stay float, ``int8_float_stages``), or int16 / float activations with
  ``int8_activations``; input/output float by default, or int8/uint8 (``int8_io``) for
  integer-only accelerators. ``noisy_student.export.tflite`` has the choices and the agreement
  warning.

What each file returns (logits or probabilities) is listed in
``noisy_student.export.artifacts``; the report has it per format (``returns``).
* ``onnx``: tf2onnx (optional extra ``export``), run with onnxruntime.

TFLite is converted from the Keras model's built-in-layer copy
(``TFLiteConverter.from_keras_model``): converting our
SavedModel with ``from_saved_model`` keeps the Keras 3 variables as uninitialized resource
variables on TF 2.21 and the interpreter returns NaN (see BUILD.md).

    report = export_all(model, "deploy/", image_size=32, small_images=True,
                        test_data=dataset, representative=images)
    print(report_table(report))
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import statistics
import time
from collections.abc import Callable, Iterable, Sequence

import numpy as np

from noisy_student.export.artifacts import ARTIFACTS, SIGNATURES, kind_of, markdown_table
from noisy_student.export.tflite import (  # noqa: F401  (part of this module's API)
    ACTIVATIONS,
    CALIBRATIONS,
    DEFAULT_FLOAT_STAGES,
    DEFAULT_PERCENTILE,
    INT8_IO,
    TFLitePredictor,
    calibration_name,
    int8_warnings,
    tflite_bytes,
    tflite_interpreter,
    weight_quantization,
)

# TensorFlow (and everything that imports it) is imported inside the functions, so a tool's
# --help that lists FORMATS starts in a second.

FORMATS = ("keras", "saved_model", "tflite_float", "tflite_int8", "onnx")
FILES = {"keras": "model.keras", "saved_model": "saved_model",
         "tflite_float": "model_float.tflite", "tflite_int8": "model_int8.tflite",
         "onnx": "model.onnx"}
DEFAULT_OPSET = 17
PORTABLE_TOLERANCE = 1e-5  # largest output difference of model.keras from the model
EXPORT_EXTRA_HINT = "pip install -e .[export]"

Predictor = Callable[[np.ndarray], np.ndarray]


class MissingDependency(RuntimeError):
    """An optional package a format needs is not installed."""


@dataclasses.dataclass
class Artifact:
    """One format: where it was written and how to run it, or why it is missing."""

    format: str
    path: str | None = None
    size_bytes: int | None = None
    predict: Predictor | None = None
    note: str | None = None  # why the format is missing or was not run
    details: dict = dataclasses.field(default_factory=dict)  # extra report entries


# ----------------------------------------------------------------------------- conversion


def _softmax(outputs: np.ndarray) -> np.ndarray:
    shifted = outputs - outputs.max(axis=-1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=-1, keepdims=True)


def _as_probabilities(model) -> Callable[[np.ndarray], np.ndarray]:
    from noisy_student.training.checks import model_outputs_logits

    logits = model_outputs_logits(model)
    return (lambda out: _softmax(out.astype(np.float32))) if logits else (
        lambda out: out.astype(np.float32))


def serving_function(model, image_size: int):
    """tf.function images float32 [None, S, S, 3] -> the model's outputs (inference mode)."""
    import tensorflow as tf

    spec = tf.TensorSpec([None, image_size, image_size, 3], tf.float32, name="images")
    return tf.function(lambda images: model(images, training=False), input_signature=[spec])


def save_portable(model, path: str, image_size: int):
    """Saves ``model``'s copy made of Keras' own layers (``efficientnet_tf.portable``) as
    ``path`` and returns it loaded back from the file; a ValueError when its outputs differ
    from ``model``'s by more than PORTABLE_TOLERANCE on random images."""
    import keras

    from efficientnet_tf.portable import portable_model
    from noisy_student.training import save_model

    save_model(portable_model(model), path)
    loaded = keras.saving.load_model(path, compile=False)
    images = np.random.default_rng(0).uniform(0, 255, (4, image_size, image_size, 3))
    images = images.astype(np.float32)
    difference = float(np.abs(np.asarray(loaded(images, training=False))
                              - np.asarray(model(images, training=False))).max())
    if not difference <= PORTABLE_TOLERANCE:
        raise ValueError(f"the built-in-layer copy in {path} differs from the model by "
                         f"{difference:.3g} (more than {PORTABLE_TOLERANCE:g})")
    return loaded


def onnx_bytes(model, image_size: int, opset: int = DEFAULT_OPSET) -> bytes:
    """An ONNX model of ``model`` through tf2onnx (input ``images`` [N, S, S, 3] float32)."""
    try:
        import tf2onnx
    except ImportError as error:
        raise MissingDependency(f"tf2onnx is not installed ({EXPORT_EXTRA_HINT})") from error
    function = serving_function(model, image_size)
    proto, _ = tf2onnx.convert.from_function(
        function, input_signature=function.input_signature, opset=opset)
    return proto.SerializeToString()


# ----------------------------------------------------------------------------- predictors


def onnx_predictor(content: bytes, threads: int | None = None) -> Predictor:
    """onnxruntime on the CPU: images -> the model's outputs."""
    try:
        import onnxruntime
    except ImportError as error:
        raise MissingDependency(f"onnxruntime is not installed ({EXPORT_EXTRA_HINT})") from error
    options = onnxruntime.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(content, options,
                                           providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda images: session.run(None, {name: np.asarray(images, np.float32)})[0]


def saved_model_predictor(export_dir: str) -> Predictor:
    """The ``serving_images`` signature of our SavedModel export (returns probabilities)."""
    import tensorflow as tf

    loaded = tf.saved_model.load(export_dir)
    signature = loaded.signatures["serving_images"]

    def predict(images: np.ndarray) -> np.ndarray:
        _ = loaded  # keep the loaded object (it owns the variables) alive with the predictor
        return signature(images=tf.constant(images, tf.float32))["probabilities"].numpy()

    return predict


# ----------------------------------------------------------------------------- export


def _directory_size(path: str) -> int:
    return sum(os.path.getsize(os.path.join(root, name))
               for root, _, names in os.walk(path) for name in names)


def _failure(error: BaseException) -> str:
    first = str(error).strip().splitlines()[0][:300] if str(error).strip() else ""
    return f"{type(error).__name__}: {first}" if first else type(error).__name__


def _write_format(name: str, model, output_dir: str, *, image_size: int, small_images: bool,
                  representative: Sequence[np.ndarray] | None, int8_io: str, opset: int,
                  threads: int | None, int8_activations: str = "int8",
                  int8_calibration: str = "percentile",
                  int8_percentile: float = DEFAULT_PERCENTILE,
                  int8_float_stages: int = DEFAULT_FLOAT_STAGES) -> Artifact:
    """Writes one format and builds its predictor (probabilities); raises on failure."""
    import tensorflow as tf

    from noisy_student.atomic_io import write_bytes_atomic
    from noisy_student.export.saved_model import export_saved_model

    path = os.path.join(output_dir, FILES[name])
    probabilities = _as_probabilities(model)
    if name == "keras":
        loaded = save_portable(model, path, image_size)
        function = serving_function(loaded, image_size)
        return Artifact(name, path, os.path.getsize(path),
                        lambda x: probabilities(function(tf.constant(x, tf.float32)).numpy()))
    if name == "saved_model":
        export_saved_model(model, path, image_size=image_size, small_images=small_images)
        return Artifact(name, path, _directory_size(path), saved_model_predictor(path),
                        details={"signatures": list(SIGNATURES)})
    if name.startswith("tflite"):
        quantize = name == "tflite_int8"
        if quantize and not representative and int8_activations != "float":
            return Artifact(name, note="skipped: int8 quantization needs representative "
                                       "images (--representative_data or --data)")
        content = tflite_bytes(model, quantize=quantize, representative=representative,
                               int8_io=int8_io, activations=int8_activations,
                               calibration=int8_calibration, percentile=int8_percentile,
                               float_stages=int8_float_stages)
        write_bytes_atomic(path, content)
        runner = TFLitePredictor(content, threads)
        details = {"activations": int8_activations, "calibration_images": 0 if (
            int8_activations == "float") else sum(
            len(np.reshape(i, (-1, *np.shape(i)[-3:]))) for i in representative),
            "calibration": calibration_name(int8_activations, int8_calibration,
                                            int8_percentile),
            "float_stages": int8_float_stages if (
                int8_activations == "int8" and int8_io == "float") else 0,
            "weights": weight_quantization(content)} if quantize else {}
        return Artifact(name, path, len(content), lambda x: probabilities(runner(x)),
                        details=details)
    if name == "onnx":
        content = onnx_bytes(model, image_size, opset)
        write_bytes_atomic(path, content)
        try:
            runner = onnx_predictor(content, threads)
        except MissingDependency as missing:
            return Artifact(name, path, len(content), note=f"written, not run: {missing}")
        return Artifact(name, path, len(content), lambda x: probabilities(runner(x)))
    raise ValueError(f"unknown format {name!r}; use some of {FORMATS}")


def write_formats(model, output_dir: str, *, image_size: int, small_images: bool = False,
                  formats: Sequence[str] = FORMATS,
                  representative: Sequence[np.ndarray] | None = None,
                  int8_io: str = "float", opset: int = DEFAULT_OPSET,
                  threads: int | None = None,
                  progress: Callable[[str], None] = lambda message: None,
                  int8_activations: str = "int8", int8_calibration: str = "percentile",
                  int8_percentile: float = DEFAULT_PERCENTILE,
                  int8_float_stages: int = DEFAULT_FLOAT_STAGES) -> list[Artifact]:
    """Writes every format to ``output_dir``; a format that cannot be written (missing
    package, converter error) is reported in its ``note`` instead of stopping the others."""
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise ValueError(f"unknown formats {unknown}; use some of {FORMATS}")
    os.makedirs(output_dir, exist_ok=True)
    artifacts = []
    for index, name in enumerate(formats):
        progress(f"[{index + 1}/{len(formats)}] writing {name}")
        try:
            artifact = _write_format(name, model, output_dir, image_size=image_size,
                                     small_images=small_images, representative=representative,
                                     int8_io=int8_io, opset=opset, threads=threads,
                                     int8_activations=int8_activations,
                                     int8_calibration=int8_calibration,
                                     int8_percentile=int8_percentile,
                                     int8_float_stages=int8_float_stages)
        except MissingDependency as missing:
            artifact = Artifact(name, note=f"skipped: {missing}")
        except Exception as error:  # converters raise many types; report, keep going
            artifact = Artifact(name, note=f"conversion failed: {_failure(error)}")
        if artifact.path is None:
            _remove_stale(output_dir, name)
        if artifact.note:
            progress(f"    {name}: {artifact.note}")
        artifacts.append(artifact)
    return artifacts


def _remove_stale(output_dir: str, name: str) -> None:
    """Deletes the file of a format left by an earlier export, so a format that was not
    written this time is not mistaken for a current one."""
    path = os.path.join(output_dir, FILES[name])
    if os.path.isdir(path):
        shutil.rmtree(path)
    elif os.path.exists(path):
        os.remove(path)


# ----------------------------------------------------------------------------- checks


def compare_predictions(artifacts: Sequence[Artifact], batches: Iterable, *,
                        reference: str = "keras", max_examples: int | None = None,
                        progress: Callable[[str], None] = lambda message: None) -> dict:
    """Runs every runnable format on (images, labels) batches (labels may be None); per
    format: top-1 accuracy, agreement of the top-1 class with ``reference`` and the largest
    absolute probability difference to it."""
    runnable = [a for a in artifacts if a.predict is not None]
    if reference not in {a.format for a in runnable}:
        raise ValueError(f"the reference format {reference!r} was not written")
    stats = {a.format: {"correct": 0, "agree": 0, "max_abs_diff": 0.0} for a in runnable}
    seen, labeled = 0, True
    for images, labels in batches:
        images = np.asarray(images, np.float32)
        if max_examples is not None:
            images = images[:max_examples - seen]
            labels = None if labels is None else np.asarray(labels)[:len(images)]
        if not len(images):
            break
        outputs = {a.format: a.predict(images) for a in runnable}
        expected = outputs[reference]
        for name, probs in outputs.items():
            s = stats[name]
            s["agree"] += int((probs.argmax(1) == expected.argmax(1)).sum())
            s["max_abs_diff"] = max(s["max_abs_diff"], float(np.abs(probs - expected).max()))
            if labels is not None:
                s["correct"] += int((probs.argmax(1) == np.asarray(labels)).sum())
        labeled = labeled and labels is not None
        seen += len(images)
        progress(f"    compared {seen} images")
        if max_examples is not None and seen >= max_examples:
            break
    if seen == 0:
        raise ValueError("the test data yielded no images")
    return {name: {"num_examples": seen,
                   "top1": s["correct"] / seen if labeled else None,
                   "agreement": s["agree"] / seen,
                   "max_abs_diff": s["max_abs_diff"]} for name, s in stats.items()}


def latency_ms(predict: Predictor, image: np.ndarray, *, runs: int = 50,
               warmup: int = 5) -> float:
    """Median wall time of one batch-1 prediction in milliseconds."""
    batch = np.asarray(image, np.float32)[None]
    for _ in range(warmup):
        predict(batch)
    times = []
    for _ in range(max(runs, 1)):
        start = time.perf_counter()
        predict(batch)
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


# ----------------------------------------------------------------------------- report


def export_all(model, output_dir: str, *, image_size: int, small_images: bool = False,
               formats: Sequence[str] = FORMATS,
               representative: Sequence[np.ndarray] | None = None,
               test_data: Iterable | None = None, max_examples: int | None = None,
               latency_runs: int = 50, int8_io: str = "float", opset: int = DEFAULT_OPSET,
               threads: int | None = None, extra: dict | None = None,
               progress: Callable[[str], None] = lambda message: None,
               int8_activations: str = "int8", int8_calibration: str = "percentile",
               int8_percentile: float = DEFAULT_PERCENTILE,
               int8_float_stages: int = DEFAULT_FLOAT_STAGES) -> dict:
    """Writes all formats, compares them with Keras on ``test_data`` ((images, labels)
    batches), times batch-1 latency, and writes ``export_report.json`` / ``.md``; the int8
    file's shortfalls (``int8_warnings``) go to ``progress`` and the report's ``warnings``."""
    from noisy_student.atomic_io import write_json_atomic, write_text_atomic
    from noisy_student.training.checks import model_outputs_logits

    formats = list(formats)
    if "keras" not in formats:
        formats.insert(0, "keras")  # the reference of every comparison
    artifacts = write_formats(model, output_dir, image_size=image_size,
                              small_images=small_images, formats=formats,
                              representative=representative, int8_io=int8_io, opset=opset,
                              threads=threads, progress=progress,
                              int8_activations=int8_activations,
                              int8_calibration=int8_calibration,
                              int8_percentile=int8_percentile,
                              int8_float_stages=int8_float_stages)
    logits = model_outputs_logits(model)
    rows = {a.format: {"path": a.path, "size_bytes": a.size_bytes, "note": a.note,
                       "returns": returns(a.format, logits), **a.details} for a in artifacts}
    first: list[np.ndarray] = []  # the first test image, for the latency runs
    if test_data is not None:
        progress("comparing predictions with the Keras model")
        checks = compare_predictions(artifacts, _as_numpy(test_data, first),
                                     max_examples=max_examples, progress=progress)
        for name, check in checks.items():
            rows[name].update(check)
    if latency_runs > 0:
        sample = first[0] if first else np.random.default_rng(0).uniform(
            0, 255, (image_size, image_size, 3))
        for a in artifacts:
            if a.predict is not None:
                progress(f"timing {a.format} ({latency_runs} runs)")
                rows[a.format]["latency_ms"] = latency_ms(a.predict, sample, runs=latency_runs)
    found = int8_warnings(rows)
    for warning in found:
        progress(f"WARNING: {warning}")
    report = {"formats": rows, "image_size": image_size, "threads": threads,
              "int8_io": int8_io, "int8_activations": int8_activations,
              "int8_calibration": calibration_name(int8_activations, int8_calibration,
                                                   int8_percentile),
              "latency_runs": latency_runs, "warnings": found, **(extra or {})}
    write_json_atomic(os.path.join(output_dir, "export_report.json"), report)
    written = [a.format for a in artifacts if a.path]
    markdown = "\n\n".join([report_table(report), *(f"**Warning**: {w}." for w in found),
                            "What each file returns:", markdown_table(written, logits)])
    write_text_atomic(os.path.join(output_dir, "export_report.md"), markdown + "\n")
    return report


def returns(format_name: str, model_logits: bool) -> str:
    """What the file of ``format_name`` returns (noisy_student.export.artifacts): logits or
    probabilities."""
    entry = next(a for a in ARTIFACTS if a.format == format_name)
    return kind_of(entry, model_logits)


def _as_numpy(batches: Iterable, first: list):
    """Yields (images, labels or None) batches as numpy; appends the first image to ``first``."""
    for batch in batches:
        images, labels = batch if isinstance(batch, tuple | list) else (batch, None)
        images = np.asarray(images)
        if not first and len(images):
            first.append(images[0])
        yield images, None if labels is None else np.asarray(labels)


def report_table(report: dict) -> str:
    """Markdown table: format, size, top-1, agreement and max |dp| vs Keras, latency."""
    lines = ["| format | returns | size (KiB) | top-1 | top-1 agreement with keras "
             "| max abs prob diff | latency batch 1 (ms) | note |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |"]

    def number(value, fmt):
        return "-" if value is None else format(value, fmt)

    for name, row in report["formats"].items():
        lines.append(
            f"| {name} | {row.get('returns', '-')} "
            f"| {number(row.get('size_bytes') and row['size_bytes'] / 1024, ',.1f')} "
            f"| {number(row.get('top1'), '.2%')} | {number(row.get('agreement'), '.2%')} "
            f"| {number(row.get('max_abs_diff'), '.2g')} | {number(row.get('latency_ms'), '.2f')} "
            f"| {row.get('note') or ''} |")
    return "\n".join(lines)

