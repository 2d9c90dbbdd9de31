r"""Converts keras.applications EfficientNet weights or a reference TF checkpoint to our format.

efficientnet-convert-weights --source=efficientnetb3_notop.h5 --output=b3_notop.keras
efficientnet-convert-weights --source=noisy-student-efficientnet-b3/model.ckpt \
    --output=b3_noisy_student.weights.h5
efficientnet-convert-weights --source=svhn_teacher/model.ckpt --variant=b0 --small_images \
    --output=svhn_b0.keras

The source kind is detected: `.h5` / `.weights.h5` / `.keras` files with keras.applications layer
names, otherwise a TF checkpoint prefix (or a directory holding one; TensorFlow needed). The output
(`.keras`: the whole model; `.weights.h5`: weights only) is written to a temporary name in the
same directory and renamed when complete.
"""

from __future__ import annotations

import os
import tempfile

from absl import app, flags

from noisy_student.cli import flag_groups
from noisy_student.cli.runner import run_tool

FLAGS = flags.FLAGS

OUTPUT_SUFFIXES = (".keras", ".weights.h5")


def convert(
    source: str,
    output: str,
    variant: str | None = None,
    use_ema: bool = True,
    scope: str | None = None,
    **create_kwargs,
):
    """Loads `source` into the matching efficientnet_tf model and writes it to `output`."""
    from efficientnet_tf import weights

    if not output.endswith(OUTPUT_SUFFIXES):
        raise ValueError(f"--output must end in .keras or .weights.h5, got {output!r}.")
    if variant is not None:
        create_kwargs["variant"] = variant
    if source.endswith((".h5", ".keras")):
        if not os.path.exists(source):
            raise FileNotFoundError(f"--source {source} does not exist.")
        model = weights.from_keras_applications(source, **create_kwargs)
    else:
        model = weights.from_tf_checkpoint(source, use_ema=use_ema, scope=scope, **create_kwargs)
    save_atomic(model, output)
    return model


def save_atomic(model, path: str) -> None:
    """model.save / save_weights to a temporary file beside `path`, then rename it."""
    suffix = next(s for s in OUTPUT_SUFFIXES if path.endswith(s))
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    handle, temporary = tempfile.mkstemp(suffix=suffix, prefix=".tmp-", dir=directory)
    os.close(handle)
    try:
        if suffix == ".keras":
            model.save(temporary)
        else:
            model.save_weights(temporary)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def define_flags() -> None:
    """Defines the tool's flags (only when run as a program, so importing it never clashes
    with other absl flags in the same process)."""
    flag_groups.define_traceback_flag()
    flags.DEFINE_string(
        "source", None, "keras.applications .h5/.weights.h5/.keras or TF checkpoint."
    )
    flags.DEFINE_string("output", None, "Output path ending in .keras or .weights.h5.")
    flags.DEFINE_string("variant", None, "Variant (b0..b8, l2); default: inferred from the source.")
    flags.DEFINE_bool("use_ema", True, "TF checkpoints: load the ExponentialMovingAverage shadows.")
    flags.DEFINE_string("scope", None, "TF checkpoints: variable prefix, e.g. 'efficientnet-b0'.")
    flags.DEFINE_bool("small_images", False, "The 32x32 variant (SVHN/CIFAR checkpoints).")


def main(argv):
    del argv
    if not FLAGS.source or not FLAGS.output:
        raise app.UsageError("--source and --output are required.")
    extra = {"small_images": True} if FLAGS.small_images else {}
    model = convert(FLAGS.source, FLAGS.output, FLAGS.variant, FLAGS.use_ema, FLAGS.scope, **extra)
    print(f"Wrote {FLAGS.output}: {model.name}, {model.count_params():,} parameters.")


def run() -> None:
    """Console-script entry point."""
    run_tool(__name__, define_flags, main, "efficientnet-convert-weights")


if __name__ == "__main__":
    run()
