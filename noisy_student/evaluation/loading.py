"""The models evaluation scores: a run's model folders, loading one model (a ``.keras`` file, a
model folder or a run directory; EMA or raw weights), its input size, and its scores as one
tf.function (optionally a subset of its classes).

    model, info = load_model("runs/cifar10_4000")                # EMA weights of the last model
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import tensorflow as tf

from noisy_student.run import layout as run_layout
from noisy_student.run.layout import FINAL_MODEL, MANIFEST


def run_model_dirs(run_dir: str) -> dict[int, str]:
    """{iteration: model directory} of a run directory (0 = teacher, N = iterN/student) for the
    models that exist there."""
    dirs = {}
    teacher = os.path.join(run_dir, run_layout.model_dir(0))
    if tf.io.gfile.isdir(teacher):
        dirs[0] = teacher
    n = 1
    while tf.io.gfile.isdir(os.path.join(run_dir, run_layout.model_dir(n))):
        dirs[n] = os.path.join(run_dir, run_layout.model_dir(n))
        n += 1
    return dirs


def load_model(path: str, *, iteration: int | None = None, ema: bool = True,
               model_fn: Callable[[], object] | None = None):
    """Loads a model to evaluate; returns (model, info dict).

    ``path`` is a ``.keras`` file, a model directory (``teacher/``, ``iterN/student/``) or a run
    directory (with ``manifest.json``; ``iteration`` picks the model, default the last one).
    In a model directory, ``ema=True`` (default) loads the EMA weights: ``model.keras`` (saved
    from the EMA weights at the end of training) or else the latest checkpoint's EMA shadows;
    ``ema=False`` restores the raw weights of the latest checkpoint. Checkpoints need
    ``model_fn`` building the same architecture as in training.
    """
    import keras

    import efficientnet_tf  # noqa: F401  (registers our layers for .keras deserialization)
    from noisy_student.training import load_ema_model

    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(f"{path}: no such model file or directory")
    info = {"model_path": path}
    if not tf.io.gfile.isdir(path):
        return keras.models.load_model(path, compile=False), {**info, "weights": "file"}
    if tf.io.gfile.exists(os.path.join(path, MANIFEST)):
        dirs = run_model_dirs(path)
        if not dirs:
            raise FileNotFoundError(f"{path}: run directory without teacher/ or iterN/student/")
        iteration = max(dirs) if iteration is None or iteration < 0 else iteration
        if iteration not in dirs:
            raise FileNotFoundError(f"{path}: no model for iteration {iteration} "
                                    f"(have {sorted(dirs)})")
        info.update(run_dir=path, iteration=iteration)
        path = dirs[iteration]
    info["model_dir"] = path
    final = os.path.join(path, FINAL_MODEL)
    if ema and tf.io.gfile.exists(final):
        return keras.models.load_model(final, compile=False), {**info, "weights": "ema"}
    if tf.train.latest_checkpoint(path) is None:
        raise FileNotFoundError(f"{path}: no {FINAL_MODEL} and no checkpoint to evaluate")
    if model_fn is None:
        raise ValueError(f"{path}: evaluating a checkpoint needs the architecture "
                         "(model_fn, or --arch and its options on the command line)")
    if ema:
        return load_ema_model(path, model_fn), {**info, "weights": "ema"}
    model = model_fn()
    tf.train.Checkpoint(model=model).restore(tf.train.latest_checkpoint(path)).expect_partial()
    return model, {**info, "weights": "raw"}


def model_image_size(model, default: int | None = None) -> int:
    """The square input side a model was built for, else ``default``."""
    shape = getattr(model, "input_shape", None)
    if shape and len(shape) == 4 and shape[1] and shape[1] == shape[2]:
        return int(shape[1])
    if default is None:
        raise ValueError("the model has no fixed input size; give the image size")
    return default


def model_scores(model, class_indices: Sequence[int] | None):
    gather = None if class_indices is None else tf.constant(list(class_indices), tf.int32)

    @tf.function(reduce_retracing=True)
    def scores(images):
        out = tf.cast(model(images, training=False), tf.float32)
        return out if gather is None else tf.gather(out, gather, axis=1)

    return scores
