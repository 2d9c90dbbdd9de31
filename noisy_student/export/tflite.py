"""TFLite conversion (float, int8) of a trained classifier, its interpreter, and the checks that
decide whether an int8 file is worth shipping (``noisy_student.export.deploy`` writes and
compares it).

int8 choices (measured in BUILD.md, "Deployment formats"):

* The converter reads ``efficientnet_tf.portable_model(model)``, the copy made of Keras' own
  layers: its 1x1 convolutions stay ``CONV_2D`` with batch norm folded into per-channel int8
  weights. Our fast-path layers instead convert to ``FULLY_CONNECTED`` plus reshapes with batch
  norm left as separate per-tensor ``MUL``/``ADD`` ops, which loses more to quantization.
* Weights are quantized per output channel (TFLite's default for convolutions, depthwise
  convolutions and dense layers; ``per_channel=False`` turns it off to compare);
  ``weight_quantization`` counts them in a written file.
* Activations are int8 (full-integer, for integer-only accelerators); or, with int8 weights
  still, ``activations="int16"`` (TFLite's 16x8 mode: near-float agreement, about the int8
  size, but slow reference kernels on CPUs) or ``activations="float"`` (dynamic-range
  quantization: no calibration, the smallest file, near-float agreement, float kernels).
* ``int8_warnings`` says when agreement with the float model is under ``MIN_AGREEMENT`` or
  top-1 drops by more than ``MAX_TOP1_DROP``; the export prints it.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Iterable

import numpy as np

INT8_IO = ("float", "int8", "uint8")
ACTIVATIONS = ("int8", "int16", "float")
MIN_AGREEMENT = 0.97  # top-1 agreement of the int8 file with the float model
MAX_TOP1_DROP = 0.01  # top-1 accuracy the int8 file may lose
_WEIGHT_OPS = {"CONV_2D": 1, "DEPTHWISE_CONV_2D": 1, "FULLY_CONNECTED": 1}  # op -> weight input


def tflite_bytes(model, *, quantize: bool = False,
                 representative: Iterable[np.ndarray] | None = None,
                 int8_io: str = "float", per_channel: bool = True,
                 activations: str = "int8") -> bytes:
    """A TFLite flatbuffer of ``model`` (converted from its built-in-layer copy): float, or
    with ``quantize`` int8 weights (per channel unless ``per_channel`` is False) and
    ``activations`` int8 or int16 calibrated on ``representative`` (single images [S, S, 3] or
    batches, 0..255; each image is one calibration step), or float (no calibration)."""
    import tensorflow as tf

    from efficientnet_tf.portable import portable_model

    converter = tf.lite.TFLiteConverter.from_keras_model(portable_model(model))
    if quantize:
        if activations not in ACTIVATIONS:
            raise ValueError(f"activations must be one of {ACTIVATIONS}, got {activations!r}")
        if representative is None and activations != "float":
            raise ValueError("int8 quantization needs representative images")
        if int8_io not in INT8_IO:
            raise ValueError(f"int8_io must be one of {INT8_IO}, got {int8_io!r}")
        if activations != "int8" and int8_io != "float":
            raise ValueError(f"{activations} activations keep float input and output "
                             "(int8_io='float')")
        if not hasattr(converter, "_experimental_disable_per_channel"):
            raise RuntimeError("this TensorFlow's TFLiteConverter has no per-channel switch "
                               "(_experimental_disable_per_channel); update noisy_student")
        converter._experimental_disable_per_channel = not per_channel  # default: per channel
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantize and activations != "float":  # float: dynamic range, weights only
        calibration = [np.asarray(i, np.float32).reshape((-1, *np.shape(i)[-3:]))
                       for i in representative]
        converter.representative_dataset = lambda: (
            [image[None]] for batch in calibration for image in batch)
        ops = tf.lite.OpsSet
        converter.target_spec.supported_ops = [
            ops.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8
            if activations == "int16" else ops.TFLITE_BUILTINS_INT8]
        if int8_io != "float":
            converter.inference_input_type = getattr(tf, int8_io)
            converter.inference_output_type = getattr(tf, int8_io)
    with contextlib.redirect_stdout(io.StringIO()):  # Keras' export lists every captured variable
        return converter.convert()


def tflite_interpreter(**kwargs):
    """A TFLite interpreter: LiteRT's (``ai_edge_litert``, the ``export`` extra) when installed,
    else ``tf.lite.Interpreter``, which TensorFlow deprecates in its favour."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        import tensorflow as tf

        with warnings.catch_warnings():  # tf.lite.Interpreter's LiteRT deprecation notice
            warnings.simplefilter("ignore")
            return tf.lite.Interpreter(**kwargs)
    return Interpreter(**kwargs)


def weight_quantization(content: bytes) -> dict[str, int]:
    """How the integer weights of a TFLite file's convolutions and dense layers are quantized:
    ``per_channel`` (one scale per output channel) and ``per_tensor`` counts."""
    interpreter = tflite_interpreter(model_content=content)
    tensors = {d["index"]: d for d in interpreter.get_tensor_details()}
    counts = {"per_channel": 0, "per_tensor": 0}
    for op in interpreter._get_ops_details():  # the only API listing ops and their inputs
        position = _WEIGHT_OPS.get(op["op_name"])
        if position is None or len(op["inputs"]) <= position:
            continue
        weight = tensors.get(int(op["inputs"][position]))
        if weight is None or not np.issubdtype(weight["dtype"], np.integer):
            continue
        scales = weight["quantization_parameters"]["scales"]
        counts["per_channel" if len(scales) > 1 else "per_tensor"] += 1
    return counts


def int8_warnings(rows: dict, reference: str = "keras",
                  name: str = "tflite_int8") -> list[str]:
    """Why the int8 file of an export report's ``rows`` is not worth shipping: agreement with
    ``reference`` under MIN_AGREEMENT, or top-1 more than MAX_TOP1_DROP below it."""
    row, base = rows.get(name) or {}, rows.get(reference) or {}
    found = []
    if row.get("agreement") is not None and row["agreement"] < MIN_AGREEMENT:
        found.append(f"{name} agrees with the float model on {row['agreement']:.2%} of "
                     f"{row['num_examples']} images (under {MIN_AGREEMENT:.0%})")
    if (row.get("top1") is not None and base.get("top1") is not None
            and round(base["top1"] - row["top1"], 9) > MAX_TOP1_DROP):  # 0.70 - 0.69 > 0.01
        found.append(f"{name} top-1 {row['top1']:.2%} is more than {MAX_TOP1_DROP:.0%} "
                     f"below the float model's {base['top1']:.2%}")
    if found:
        found[-1] += ("; ship tflite_float, or int8 weights with float activations "
                      "(--int8_activations=float)")
    return found


class TFLitePredictor:
    """Runs a TFLite flatbuffer on float images (quantizing integer inputs, dequantizing
    integer outputs) and returns the model's outputs as float32."""

    def __init__(self, content: bytes, threads: int | None = None):
        self.interpreter = tflite_interpreter(model_content=content, num_threads=threads)
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        self.batch = None

    def __call__(self, images: np.ndarray) -> np.ndarray:
        images = np.asarray(images, np.float32)
        if self.batch != len(images):
            self.interpreter.resize_tensor_input(self.input["index"], list(images.shape))
            self.interpreter.allocate_tensors()
            self.batch = len(images)
        dtype = self.input["dtype"]
        if dtype != np.float32:
            scale, zero = self.input["quantization"]
            limits = np.iinfo(dtype)
            images = np.clip(np.round(images / scale + zero), limits.min, limits.max)
        self.interpreter.set_tensor(self.input["index"], images.astype(dtype))
        self.interpreter.invoke()
        out = self.interpreter.get_tensor(self.output["index"])
        if self.output["dtype"] != np.float32:
            scale, zero = self.output["quantization"]
            out = (out.astype(np.float32) - zero) * scale
        return out.astype(np.float32)
