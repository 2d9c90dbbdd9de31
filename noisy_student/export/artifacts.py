"""Every artifact a trained model ships as, what it takes and what it returns (logits or
probabilities): the one list that README, ``noisy-student-export-model --help``, the export
report and the demo print (``python -m noisy_student.export.artifacts`` prints README's table).

The SavedModel signatures (``noisy_student.export.saved_model``) always return probabilities.
The Keras, TFLite and ONNX files return the model's own outputs: logits for every model this package
trains (``classifier_activation=None``); a model ending in softmax gives probabilities there,
and the export report says which one it exported. No TensorFlow import: ``--help`` stays fast.
"""

from __future__ import annotations

import dataclasses

LOGITS, PROBABILITIES = "logits", "probabilities"
IMAGES = "`images` float32 [B, S, S, 3], RGB 0..255"


@dataclasses.dataclass(frozen=True)
class Entry:
    """One artifact (or SavedModel signature) and its contract."""

    name: str
    where: str
    inputs: str
    outputs: str
    kind: str  # LOGITS or PROBABILITIES (LOGITS: the model's own outputs, see the module doc)
    format: str | None = None  # its noisy_student.export.deploy format, None if not written there
    signature: str | None = None  # the SavedModel signature it is


def _signature(name: str, inputs: str, outputs: str) -> Entry:
    return Entry(f"SavedModel `{name}`", "`export/`, `deploy/saved_model/`", inputs,
                    outputs, PROBABILITIES, "saved_model", name)


_STATUS = "; a bad image gets `valid` False, class -1, zero probabilities"
ARTIFACTS: tuple[Entry, ...] = (
    _signature("serving_default", IMAGES + "; pixels outside [-1, 256), NaN or inf fail",
               "`probabilities` [B, C], `classes` [B]"),
    _signature("serving_images", "as `serving_default`", "`probabilities`, `classes`"),
    _signature("serving_bytes", "`image_bytes` string [B], JPEG/PNG/GIF/BMP; undecodable fail",
               "`probabilities`, `classes`"),
    _signature("serving_bytes_status", "as `serving_bytes`" + _STATUS,
               "`probabilities`, `classes`, `valid` [B]"),
    _signature("serving_images_status", "as `serving_default`" + _STATUS,
               "`probabilities`, `classes`, `valid` [B]"),
    Entry("deploy `model.keras` (Keras layers only)", "`deploy/model.keras`", IMAGES,
             "[B, C]", LOGITS, "keras"),
    Entry("TFLite float32", "`deploy/model_float.tflite`", IMAGES, "[B, C]", LOGITS,
             "tflite_float"),
    Entry("TFLite int8", "`deploy/model_int8.tflite`",
             IMAGES + " (int8/uint8 with `--int8_io`)", "[B, C], dequantized", LOGITS,
             "tflite_int8"),
    Entry("ONNX", "`deploy/model.onnx`", IMAGES, "[B, C]", LOGITS, "onnx"),
    Entry("run's model (needs `import efficientnet_tf`)",
             "`teacher/model.keras`, `iterN/student/model.keras`", IMAGES, "[B, C]", LOGITS),
)
SIGNATURES: tuple[str, ...] = tuple(a.signature for a in ARTIFACTS if a.signature)


def kind_of(artifact: Entry, model_logits: bool = True) -> str:
    """What ``artifact`` returns for a model that outputs logits (``model_logits``) or not."""
    return artifact.kind if artifact.kind == PROBABILITIES or model_logits else PROBABILITIES


def markdown_table(formats: tuple[str, ...] | list[str] | None = None,
                   model_logits: bool = True) -> str:
    """The artifacts as a Markdown table (README, export report); only those of ``formats``
    when given."""
    lines = ["| artifact | file | input | output | returns |", "| --- | --- | --- | --- | --- |"]
    lines += [f"| {a.name} | {a.where} | {a.inputs} | {a.outputs} | "
              f"**{kind_of(a, model_logits)}** |"
              for a in ARTIFACTS if formats is None or a.format in formats]
    return "\n".join(lines)


def text_table() -> str:
    """The artifacts as plain lines (``--help``)."""
    width = max(len(_plain(a.name)) for a in ARTIFACTS)
    return "\n".join(f"  {_plain(a.name):<{width}}  {a.kind:<13}  ({_plain(a.outputs)})"
                     for a in ARTIFACTS)


def saved_model_line() -> str:
    """One line naming every SavedModel signature and what they return (the demo)."""
    return f"signatures {', '.join(SIGNATURES)}; all return {PROBABILITIES} and classes"


def _plain(text: str) -> str:
    return text.replace("`", "")


if __name__ == "__main__":
    print(markdown_table())
