"""Sanity checks on the models given to training."""

from __future__ import annotations

import keras
import tensorflow as tf


def check_student_size(
    student: keras.Model | int, teacher: keras.Model | int, allow_smaller_student: bool = False
) -> tuple[int, int]:
    """Noisy Student trains an equal or larger student. Raises ValueError when the student has
    fewer parameters than the teacher, unless allowed. Accepts models or parameter counts;
    returns (student_params, teacher_params)."""
    student_params = student if isinstance(student, int) else student.count_params()
    teacher_params = teacher if isinstance(teacher, int) else teacher.count_params()
    if student_params < teacher_params and not allow_smaller_student:
        raise ValueError(
            f"The student has {student_params:,} parameters, fewer than the teacher's "
            f"{teacher_params:,}; Noisy Student needs an equal or larger student. Pick a larger "
            "student model, or pass allow_smaller_student=True (--allow_smaller_student) to "
            "train it anyway (knowledge distillation)."
        )
    return student_params, teacher_params


def model_outputs_logits(model) -> bool:
    """True if the model's last layer has no activation, False if it ends in a softmax (an
    activation or a Softmax layer); a ValueError when it cannot tell. The one answer for
    labeling, training, export and deployment."""
    last = (getattr(model, "layers", None) or [None])[-1]
    name = getattr(getattr(last, "activation", None), "__name__", "")
    if name == "linear":
        return True
    if name == "softmax" or isinstance(last, keras.layers.Softmax):
        return False
    raise ValueError(f"cannot tell whether {getattr(model, 'name', model)} outputs logits or "
                     f"probabilities (last layer activation {name or None!r}); pass from_logits")


def require_logits(model: keras.Model, role: str = "model") -> None:
    """Training and on-the-fly labeling work on logits: refuse a model that ends in softmax.
    A model whose output `model_outputs_logits` cannot tell is taken as logits."""
    try:
        logits = model_outputs_logits(model)
    except ValueError:
        return
    if not logits:
        raise ValueError(
            f"The {role} {model.name!r} ends in a softmax; build it with "
            "classifier_activation=None so training sees logits."
        )


def check_target_classes(targets: tf.Tensor, logits: tf.Tensor, what: str) -> None:
    """Static check that targets and logits agree on the number of classes."""
    target_classes, model_classes = targets.shape[-1], logits.shape[-1]
    if None not in (target_classes, model_classes) and target_classes != model_classes:
        raise ValueError(
            f"The {what} have {target_classes} classes but the model outputs {model_classes}; "
            "build the model with classes equal to the data's num_classes."
        )
