"""Parameters and multiply-adds of any EfficientNet preset or compound coefficient.

efficientnet-count-flops --model=b0
efficientnet-count-flops --model=b7 --resolution=300
efficientnet-count-flops --phi=1.5 --classes=10
efficientnet-count-flops --model=all
"""

from __future__ import annotations

import os

from absl import app, flags

from noisy_student.cli import flag_groups
from noisy_student.cli.runner import run_tool

FLAGS = flags.FLAGS


def describe(name: str | None, phi: float | None) -> dict:
    """Returns name, resolution, trainable/total parameters and GMACs for one variant."""
    import keras

    from efficientnet_tf import create_model, model_config
    from efficientnet_tf.complexity import count_macs

    config = model_config(name, phi=phi)
    resolution = FLAGS.resolution or config["default_resolution"]
    row = {
        "model": config["name"],
        "resolution": resolution,
        "gmacs": count_macs(
            config["width_coefficient"],
            config["depth_coefficient"],
            resolution,
            classes=FLAGS.classes,
            small_images=FLAGS.small_images,
        )
        / 1e9,
    }
    if FLAGS.params:
        # Parameter counts do not depend on resolution: build at the smallest legal size.
        model = create_model(
            name,
            phi=phi,
            classes=FLAGS.classes,
            small_images=FLAGS.small_images,
            input_shape=(32, 32, 3),
        )
        row["trainable"] = sum(int(_size(w.shape)) for w in model.trainable_weights)
        row["total"] = model.count_params()
        keras.backend.clear_session()
    return row


def _size(shape) -> int:
    out = 1
    for dim in shape:
        out *= int(dim)
    return out


def define_flags() -> None:
    """Defines the tool's flags (only when run as a program, so importing it never clashes
    with other absl flags in the same process)."""
    flag_groups.define_traceback_flag()
    flags.DEFINE_string("model", None, "Preset (b0..b8, l2, efficientnet-b3, ...) or 'all'.")
    flags.DEFINE_float("phi", None, "Compound coefficient, instead of --model.")
    flags.DEFINE_integer("resolution", None, "Input size; defaults to the variant's own.",
                         lower_bound=1)
    flags.DEFINE_integer("classes", 1000, "Classifier size.", lower_bound=1)
    flags.DEFINE_bool("small_images", False, "The 32x32 variant (stages 2 and 3 with stride 1).")
    flags.DEFINE_bool(
        "params", True, "Also count parameters by building the model (L2 takes ~10 s and ~2 GB)."
    )


def main(argv):
    del argv
    from efficientnet_tf import model_config
    from efficientnet_tf.architecture import PRESETS

    if (FLAGS.model is None) == (FLAGS.phi is None):
        raise app.UsageError("Give exactly one of --model and --phi.")
    names = list(PRESETS) if FLAGS.model == "all" else [FLAGS.model]
    if FLAGS.phi is not None:
        names = [None]
    try:
        model_config(names[0], phi=FLAGS.phi)
    except ValueError as err:
        raise app.UsageError(f"--{'model' if FLAGS.phi is None else 'phi'}: {err}") from None
    print(f"{'model':<22}{'res':>6}{'GMACs':>10}{'trainable':>14}{'total':>14}")
    for name in names:
        row = describe(name, FLAGS.phi)
        print(
            f"{row['model']:<22}{row['resolution']:>6}{row['gmacs']:>10.3f}"
            f"{row.get('trainable', ''):>14}{row.get('total', ''):>14}",
            flush=True,
        )


def run() -> None:
    """Console-script entry point."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    run_tool(__name__, define_flags, main, "efficientnet-count-flops")


if __name__ == "__main__":
    run()
