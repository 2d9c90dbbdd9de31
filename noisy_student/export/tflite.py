"""TFLite conversion (float, int8) of a trained classifier, its interpreter, and the checks that
decide whether an int8 file is worth shipping (``noisy_student.export.deploy`` writes and
compares it).

int8 choices (measured in BUILD.md, "Deployment formats", and benchmarks/results/int8_cifar10.md):

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
* int8 activation ranges (``calibration``): TFLite's calibrator keeps each tensor's min and max
  over the calibration images. On our EfficientNets a few images drive some channels of the
  late blocks (project convolutions, residual adds, the head) 10-20x beyond where 99.99% of
  the values lie, so min/max spends the 256 levels on those outliers (the CIFAR-10 teacher:
  block6b's projection spans -53..81 while 99.99% of its values lie in -3.6..3.6) and every
  other image loses resolution; more calibration images only find larger outliers.
  ``"percentile"`` (default) clips each activation range to the ``percentile`` (99.99) of its
  values on the same calibration images: it runs TFLite's calibration only
  (``_experimental_calibrate_only``), measures the tensors in the calibrated float model,
  narrows the recorded ranges (never widens them; graph inputs keep theirs) and quantizes with
  ``mlir_quantize``, the step the converter itself would run next. ``"minmax"`` is TFLite's own.
* With float input (``int8_io="float"``) the input normalization, the stem and the first
  ``float_stages`` stage(s) (default 1: ``block1*``) run in float and the int8 part starts
  after them (``mlir_quantize``'s ``denylisted_nodes``). With clipped ranges the error is
  spread over every layer rather than one op kind (keeping all squeeze-excite ops, all swish
  outputs, all projections or the head float each gains < 0.3 points of agreement, because a
  float op's output is quantized again for the next int8 op), but noise added before the
  first stage reaches every later layer: keeping the stem and stage 1 float gains about a
  point of agreement for under 1% of the multiply-adds and no measurable latency. Integer
  input/output (for integer-only accelerators) keeps everything int8.
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
CALIBRATIONS = ("percentile", "minmax")  # how int8 activation ranges are set from calibration
DEFAULT_PERCENTILE = 99.99  # of each activation tensor's values on the calibration images
DEFAULT_FLOAT_STAGES = 1  # leading EfficientNet stages (with the stem) left float, float input
_STATISTICS_BYTES = 256 * 2**20  # float32 activations kept per calibration chunk
MIN_AGREEMENT = 0.97  # top-1 agreement of the int8 file with the float model
MAX_TOP1_DROP = 0.01  # top-1 accuracy the int8 file may lose
_WEIGHT_OPS = {"CONV_2D": 1, "DEPTHWISE_CONV_2D": 1, "FULLY_CONNECTED": 1}  # op -> weight input


def tflite_bytes(model, *, quantize: bool = False,
                 representative: Iterable[np.ndarray] | None = None,
                 int8_io: str = "float", per_channel: bool = True,
                 activations: str = "int8", calibration: str = "percentile",
                 percentile: float = DEFAULT_PERCENTILE,
                 float_stages: int = DEFAULT_FLOAT_STAGES) -> bytes:
    """A TFLite flatbuffer of ``model`` (converted from its built-in-layer copy): float, or
    with ``quantize`` int8 weights (per channel unless ``per_channel`` is False) and
    ``activations`` int8 or int16 calibrated on ``representative`` (single images [S, S, 3] or
    batches, 0..255; each image is one calibration step), or float (no calibration). int8
    activation ranges: ``calibration="percentile"`` clips each to the ``percentile`` of its
    values on those images, ``"minmax"`` keeps TFLite's min/max. With int8 activations and float
    input, the input normalization, the stem and the first ``float_stages`` stages run in float
    (``float_stages_ops``; 0: everything int8, as integer-only accelerators need; int8/uint8
    input always is). Module docstring: why."""
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
        if calibration not in CALIBRATIONS:
            raise ValueError(f"calibration must be one of {CALIBRATIONS}, got {calibration!r}")
        if not 50 < percentile <= 100:
            raise ValueError(f"percentile must be in (50, 100], got {percentile!r}")
        if float_stages < 0:
            raise ValueError(f"float_stages must be >= 0, got {float_stages!r}")
        if activations != "int8" and int8_io != "float":
            raise ValueError(f"{activations} activations keep float input and output "
                             "(int8_io='float')")
        if not hasattr(converter, "_experimental_disable_per_channel"):
            raise RuntimeError("this TensorFlow's TFLiteConverter has no per-channel switch "
                               "(_experimental_disable_per_channel); update noisy_student")
        converter._experimental_disable_per_channel = not per_channel  # default: per channel
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantize and activations != "float":  # float: dynamic range, weights only
        images = [np.asarray(i, np.float32).reshape((-1, *np.shape(i)[-3:]))
                  for i in representative]
        converter.representative_dataset = lambda: (
            [image[None]] for batch in images for image in batch)
        ops = tf.lite.OpsSet
        converter.target_spec.supported_ops = [
            ops.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8
            if activations == "int16" else ops.TFLITE_BUILTINS_INT8]
        if int8_io != "float":
            converter.inference_input_type = getattr(tf, int8_io)
            converter.inference_output_type = getattr(tf, int8_io)
        if activations == "int8":
            return _int8_quantized(converter, images, calibration=calibration,
                                   percentile=percentile, per_channel=per_channel,
                                   int8_io=int8_io,
                                   float_stages=float_stages if int8_io == "float" else 0)
    with contextlib.redirect_stdout(io.StringIO()):  # Keras' export lists every captured variable
        return converter.convert()


def calibration_name(activations: str, calibration: str = "percentile",
                     percentile: float = DEFAULT_PERCENTILE) -> str | None:
    """How the activation ranges of an int8 file were set, as the report states it:
    ``"percentile 99.99"``, ``"minmax"``, or None (float activations: not calibrated)."""
    if activations == "float":
        return None
    if activations == "int8" and calibration == "percentile" and percentile < 100:
        return f"percentile {percentile:g}"
    return "minmax"


def _int8_quantized(converter, images: list[np.ndarray], *, calibration: str,
                    percentile: float, per_channel: bool, int8_io: str,
                    float_stages: int) -> bytes:
    """int8 the way the converter makes it (calibrate, then ``mlir_quantize``), with the
    activation ranges clipped in between (``calibration="percentile"``) and the ops of the
    first ``float_stages`` stages left float (``mlir_quantize``'s ``denylisted_nodes``)."""
    import tensorflow as tf

    try:
        from tensorflow.lite.python.convert import mlir_quantize
    except ImportError as error:  # private module: fail with the fix, not a traceback
        raise RuntimeError("this TensorFlow has no tensorflow.lite.python.convert."
                           "mlir_quantize, which int8 export uses; update noisy_student or "
                           "use --int8_activations=float") from error
    converter._experimental_calibrate_only = True
    converter.experimental_new_quantizer = True
    with contextlib.redirect_stdout(io.StringIO()):
        calibrated = converter.convert()
    if calibration == "percentile" and percentile < 100:
        calibrated = clip_activation_ranges(calibrated, images, percentile)
    in_float = float_stages_ops(calibrated, float_stages)
    io_type = tf.float32 if int8_io == "float" else getattr(tf, int8_io)
    with contextlib.redirect_stdout(io.StringIO()):
        return mlir_quantize(calibrated, disable_per_channel=not per_channel,
                             input_data_type=io_type, output_data_type=io_type,
                             denylisted_nodes=in_float or None)


def float_stages_ops(content: bytes, stages: int) -> list[str]:
    """Output names of the ops of a converted EfficientNet that run before its stage
    ``stages + 1`` (the first op named ``block{stages + 1}...``): the input normalization, the
    stem and stages 1..``stages``; none for 0, or when the model has no later stage (then
    everything is int8; ``weight_quantization`` counts what is float in the file)."""
    if stages <= 0:
        return []
    interpreter = tflite_interpreter(model_content=content)
    names = {d["index"]: d["name"] for d in interpreter.get_tensor_details()}
    ops = [[names[int(i)] for i in op["outputs"]] for op in interpreter._get_ops_details()]
    marker = f"block{stages + 1}"
    stop = next((k for k, outputs in enumerate(ops) if any(marker in n for n in outputs)), None)
    return [] if stop is None else [name for outputs in ops[:stop] for name in outputs]


def _largest(values: np.ndarray, count: int) -> np.ndarray:
    """The ``count`` largest of ``values`` (all if fewer), unordered."""
    if values.size <= count:
        return values
    return np.partition(values, values.size - count)[-count:]


def clip_activation_ranges(calibrated: bytes, images: Iterable[np.ndarray],
                           percentile: float = DEFAULT_PERCENTILE) -> bytes:
    """``calibrated`` (a float TFLite flatbuffer with the min/max TFLite's calibrator recorded
    per tensor) with every recorded range but the graph inputs' narrowed to the
    ``percentile``-th and ``100 - percentile``-th percentiles of that tensor's values on
    ``images`` (exact order statistics over every value of every image; a range is never
    widened)."""
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(calibrated))
    graph = model.subgraphs[0]
    inputs = set(np.asarray(graph.inputs).tolist())
    ranged = [i for i, t in enumerate(graph.tensors)
              if i not in inputs and t.quantization is not None
              and t.quantization.min is not None and len(t.quantization.min) == 1]
    images = np.concatenate([np.asarray(i, np.float32).reshape((-1, *np.shape(i)[-3:]))
                             for i in images])
    per_image = {i: int(np.prod(np.asarray(graph.tensors[i].shape)[1:])) for i in ranged}
    tail = {i: int((1 - percentile / 100) * per_image[i] * len(images)) + 1 for i in ranged}
    chunk = int(np.clip(_STATISTICS_BYTES // (4 * max(1, sum(per_image.values()))), 1, 100))
    with warnings.catch_warnings():  # LiteRT: "intended for debugging purposes only"
        warnings.simplefilter("ignore")
        interpreter = tflite_interpreter(model_content=calibrated,
                                         experimental_preserve_all_tensors=True)
    index = interpreter.get_input_details()[0]["index"]
    high = {i: np.empty(0, np.float32) for i in ranged}
    low = {i: np.empty(0, np.float32) for i in ranged}
    for start in range(0, len(images), chunk):
        batch = images[start:start + chunk]
        interpreter.resize_tensor_input(index, list(batch.shape))
        interpreter.allocate_tensors()
        interpreter.set_tensor(index, batch)
        interpreter.invoke()
        for i in ranged:
            values = interpreter.get_tensor(i).ravel()
            high[i] = _largest(np.concatenate([high[i], values]), tail[i])
            low[i] = -_largest(np.concatenate([-low[i], -values]), tail[i])
    for i in ranged:
        quantization = graph.tensors[i].quantization
        lo, hi = float(quantization.min[0]), float(quantization.max[0])
        quantization.min = np.array([max(lo, float(low[i].max()))], np.float32)
        quantization.max = np.array([min(hi, float(high[i].min()))], np.float32)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


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
    """How the weights of a TFLite file's convolutions and dense layers are stored: integer
    ``per_channel`` (one scale per output channel), integer ``per_tensor``, or ``float``."""
    interpreter = tflite_interpreter(model_content=content)
    tensors = {d["index"]: d for d in interpreter.get_tensor_details()}
    counts = {"per_channel": 0, "per_tensor": 0, "float": 0}
    for op in interpreter._get_ops_details():  # the only API listing ops and their inputs
        position = _WEIGHT_OPS.get(op["op_name"])
        if position is None or len(op["inputs"]) <= position:
            continue
        weight = tensors.get(int(op["inputs"][position]))
        if weight is None:
            continue
        if not np.issubdtype(weight["dtype"], np.integer):
            counts["float"] += 1
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
