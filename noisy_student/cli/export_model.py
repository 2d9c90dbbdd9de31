"""Exports a trained model to every deployment format and compares them with the Keras model.

    noisy-student-export-model --model=runs/cifar10 --small_images \\
        --data='sample_data/cifar10/validation-*' \\
        --representative_data='sample_data/cifar10/train-*'
    noisy-student-export-model --model=model.keras --formats=tflite_float,tflite_int8 \\
        --data=imagenet/validation-* --max_examples=2000 --output_dir=deploy/

Writes to ``--output_dir`` (default ``<model dir>/deploy``): ``model.keras`` (Keras' own layers
only: ``keras.saving.load_model`` opens it without this package), ``saved_model/``
(the signatures below), ``model_float.tflite``,
``model_int8.tflite`` (post-training full-integer quantization, per-channel weights,
calibrated on ``--representative_examples`` images of ``--representative_data``, activation
ranges clipped to their 99.99th percentile (``--int8_calibration``), the stem and first stage
in float (``--int8_float_stages``) unless ``--int8_io`` is integer; a warning
when it agrees with the float model on under 97% of ``--data`` or loses more than 1 point of
top-1), ``model.onnx`` (tf2onnx; ``pip install -e .[export]``), and
``export_report.json`` / ``export_report.md``: size, top-1 on ``--data``, top-1 agreement and
largest probability difference with the Keras model, and median batch-1 latency on this
machine's CPU. A format that cannot be written is reported in the table, not fatal.
``--small_images`` also sets the preprocessing of the ``serving_bytes`` signature.
Logic in ``noisy_student.export.deploy``.

What each artifact returns (``noisy_student.export.artifacts``; logits are the model's own outputs,
probabilities for a model that ends in softmax):
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

from noisy_student.cli import flag_groups  # noqa: E402
from noisy_student.cli.runner import run_tool  # noqa: E402
from noisy_student.export.artifacts import text_table  # noqa: E402
from noisy_student.export.deploy import FORMATS  # noqa: E402

__doc__ += text_table() + "\n"  # --help shows the module docstring

FLAGS = flags.FLAGS


def define_flags() -> None:
    """Defines the tool's flags (only when run as a program)."""
    flag_groups.define_traceback_flag()
    flag_groups.define_model_flags()
    flags.DEFINE_string("output_dir", None, "Where the formats and the report go (default: "
                        "<model dir>/deploy, or <name>_deploy beside a .keras file).")
    flags.DEFINE_list("formats", list(FORMATS), f"Formats to write, some of {FORMATS} "
                      "(keras is always written: it is the reference).")
    flag_groups.define_data_flags(
        "Labeled test set for top-1 and the comparison with Keras: TFRecord pattern, "
        "class-folder tree or tfds:NAME@SPLIT. Without it only sizes and latency are reported.",
        num_classes=None, batch_size=32)
    flags.DEFINE_integer("max_examples", 1000, "Compare on at most this many test images "
                         "(0 = all).", lower_bound=0)
    flags.DEFINE_string("representative_data", None, "Images that calibrate the int8 "
                        "quantization (training or unlabeled TFRecords, class folders, TFDS); "
                        "default --data (calibrating on the test set flatters int8 a little).")
    flags.DEFINE_integer("representative_examples", 1000, "Calibration images for int8 "
                         "(preprocessed like evaluation images).", lower_bound=1)
    flags.DEFINE_enum("int8_activations", "int8", ["int8", "int16", "float"], "Activations "
                      "of the int8 TFLite model (weights are int8, per channel): int8 "
                      "(full-integer, for integer-only accelerators), int16 (TFLite's 16x8 "
                      "mode: near-float agreement, slow CPU kernels) or float (dynamic range: "
                      "no calibration, near-float agreement, the smallest file).")
    flags.DEFINE_enum("int8_calibration", "percentile", ["percentile", "minmax"], "How the "
                      "int8 activation ranges are set from the calibration images: percentile "
                      "(each range clipped to --int8_percentile of its values: a few outlier "
                      "images no longer take the 256 levels from every other image) or minmax "
                      "(TFLite's own: each tensor's extremes).")
    flags.DEFINE_float("int8_percentile", 99.99, "Percentile of each activation tensor's values "
                       "kept inside its int8 range (--int8_calibration=percentile).",
                       lower_bound=0, upper_bound=100)
    flags.DEFINE_integer("int8_float_stages", 1, "With float input (--int8_io=float): the "
                         "input normalization, the stem and this many leading stages of the "
                         "int8 TFLite model run in float (quantization noise there reaches "
                         "every later layer; they are a few percent of the work); 0: all int8. "
                         "Integer input/output (--int8_io=int8|uint8) is always all int8.",
                         lower_bound=0)
    flags.DEFINE_enum("int8_io", "float", ["float", "int8", "uint8"], "Input/output type of the "
                      "int8 TFLite model: float (drop-in), or int8/uint8 for integer-only "
                      "accelerators (inputs are quantized 0..255 pixels).")
    flags.DEFINE_integer("opset", 17, "ONNX opset for tf2onnx.", lower_bound=1)
    flags.DEFINE_integer("latency_runs", 50, "Timed batch-1 predictions per format (median "
                         "reported); 0 skips timing.", lower_bound=0)
    flags.DEFINE_integer("threads", 1, "CPU threads for TensorFlow, TFLite and onnxruntime "
                         "(0 = each library's default), so latencies are comparable.",
                         lower_bound=0)


def default_output_dir(model_path: str, info: dict) -> str:
    """<model dir>/deploy for directories, <name>_deploy beside a .keras file."""
    if info.get("model_dir"):
        return os.path.join(info["model_dir"], "deploy")
    stem = os.path.splitext(os.path.basename(os.path.normpath(model_path)))[0]
    return os.path.join(os.path.dirname(os.path.abspath(model_path)), f"{stem}_deploy")


def representative_images(source: str, *, image_size: int, count: int, num_classes: int,
                          small_images: bool = False, label_offset: int = 1) -> list:
    """Up to ``count`` preprocessed images (batches of float [B, S, S, 3]) for calibration;
    TFRecords may be unlabeled."""
    import tensorflow as tf

    from noisy_student.data import pipelines, tfds_source
    from noisy_student.evaluation import sources

    batch = min(count, 64)
    if sources.is_class_folder(source) or tfds_source.is_tfds_spec(source):
        dataset = sources.labeled_source(
            source, image_size=image_size, batch_size=batch, num_classes=num_classes,
            label_offset=label_offset, small_images=small_images).map(lambda x, y: x)
    else:
        if not tf.io.gfile.glob(source):
            raise FileNotFoundError(f"{source}: no such TFRecord files, class folder or "
                                    "'tfds:NAME@SPLIT' data set (--representative_data)")
        dataset = pipelines.unlabeled_dataset(source, image_size=image_size, batch_size=batch,
                                              training=False, small_images=small_images,
                                              deterministic=True)
    out, seen = [], 0
    for images in dataset:
        out.append(images.numpy()[:count - seen])
        seen += len(out[-1])
        if seen >= count:
            break
    if not out:
        raise ValueError(f"{source}: no images for calibration")
    return out


def _set_threads(threads: int) -> None:
    import tensorflow as tf

    if threads > 0:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError:  # TensorFlow already initialized (e.g. when called from tests)
            pass


def export(model_path: str, output_dir: str | None = None, *, iteration: int = -1,
           ema: bool = True, formats: Sequence[str] = FORMATS, data: str | None = None,
           max_examples: int | None = 1000, representative_data: str | None = None,
           representative_examples: int = 1000, int8_io: str = "float", opset: int = 17,
           latency_runs: int = 50, threads: int = 1, num_classes: int | None = None,
           small_images: bool = False, label_offset: int = 1, batch_size: int = 32,
           progress: Callable[[str], None] = lambda message: None,
           int8_activations: str = "int8", int8_calibration: str = "percentile",
           int8_percentile: float = 99.99, int8_float_stages: int = 1) -> dict:
    """Loads the model, writes every format with its report; returns the report."""
    from noisy_student.evaluation import loading, sources
    from noisy_student.export import deploy

    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise ValueError(f"unknown --formats {unknown}; use some of {FORMATS}")
    _set_threads(threads)
    progress(f"loading {model_path}")
    model, info = loading.load_model(model_path, iteration=iteration, ema=ema)
    size = loading.model_image_size(model)
    classes = num_classes or int(model.output_shape[-1])
    output_dir = output_dir or default_output_dir(model_path, info)
    test_data = None
    if data:
        test_data = sources.labeled_source(
            data, image_size=size, batch_size=batch_size, num_classes=classes,
            label_offset=label_offset, small_images=small_images)
    representative = None
    if "tflite_int8" in formats and int8_activations != "float" and (
            representative_data or data):
        progress(f"reading {representative_examples} calibration images")
        representative = representative_images(
            representative_data or data, image_size=size, count=representative_examples,
            num_classes=classes, small_images=small_images, label_offset=label_offset)
    extra = {"model": dict(info), "data": data,
             "representative_data": representative_data or data,
             "representative_examples": representative_examples if representative else 0}
    report = deploy.export_all(
        model, output_dir, image_size=size, small_images=small_images, formats=formats,
        representative=representative, test_data=test_data,
        max_examples=max_examples or None, latency_runs=latency_runs, int8_io=int8_io,
        opset=opset, threads=threads or None, extra=extra, progress=progress,
        int8_activations=int8_activations, int8_calibration=int8_calibration,
        int8_percentile=int8_percentile, int8_float_stages=int8_float_stages)
    report["output_dir"] = output_dir
    return report


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments {argv[1:]}")
    if not FLAGS.model:
        raise app.UsageError("--model is required")
    from absl import logging

    from noisy_student.export.deploy import report_table

    logging.set_verbosity(logging.WARNING)  # TensorFlow's and tf2onnx's INFO lines
    report = flag_groups.call_with_flags(
        export, model_path=FLAGS.model, progress=lambda m: print(m, file=sys.stderr, flush=True))
    print(report_table(report))
    for warning in report["warnings"]:
        print(f"WARNING: {warning}", file=sys.stderr)
    print(f"\nwritten to {report['output_dir']} (export_report.md, export_report.json)")


def run() -> None:
    """Console-script entry point."""
    run_tool(__name__, define_flags, main, "noisy-student-export-model")


if __name__ == "__main__":
    run()
