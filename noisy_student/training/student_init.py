"""Where a student's weights start (--student_init): its teacher's weights (same
architecture), or its teacher grown to the student's width and depth. Scratch needs nothing
here: the model builder's random weights."""

from __future__ import annotations

from collections.abc import Callable

import keras

from efficientnet_tf import architecture_of, grow_model
from efficientnet_tf.grow import builder_config


def initialized_from(model_fn: Callable[[], keras.Model],
                     source: keras.Model) -> Callable[[], keras.Model]:
    """`model_fn` whose models start from `source`'s weights (--student_init=teacher); the two
    must be the same architecture. A resumed stage then restores its own checkpoint on top."""

    def build() -> keras.Model:
        model = model_fn()
        mine = [tuple(w.shape) for w in model.weights]
        theirs = [tuple(w.shape) for w in source.weights]
        if mine != theirs:
            raise ValueError(
                f"--student_init=teacher needs a student with the teacher's architecture and "
                f"image size; {model.name} ({len(mine)} weights) differs from the teacher "
                f"{source.name} ({len(theirs)} weights). Use --student_init=scratch for a "
                "larger student.")
        model.set_weights(source.get_weights())
        return model

    return build


def grown_from(model_fn: Callable[[], keras.Model], source: keras.Model, seed: int,
               noise_stddev: float) -> Callable[[], keras.Model]:
    """`model_fn` whose models start as `source` grown to their width and depth
    (--student_init=grow, `efficientnet_tf.grow_model`); the student's own settings (input
    size, noise rates, batch norm) apply. A resumed stage then restores its own checkpoint."""

    def build() -> keras.Model:
        student = model_fn()
        record = architecture_of(student)
        return grow_model(source, width_coefficient=record.width_coefficient,
                          depth_coefficient=record.depth_coefficient, seed=seed,
                          noise_stddev=noise_stddev, **builder_config(student))

    return build
