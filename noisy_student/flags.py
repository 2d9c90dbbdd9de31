"""Command-line flags of `noisy-student` and their validation (all checked before any work).

Flag names follow the reference (`google-research/noisystudent` main.py) where it had one, so its
recipes translate directly; see configs/ for flagfiles.
"""

from __future__ import annotations

import glob
import os

from absl import flags

from noisy_student.run_layout import DEPRECATED_MODES, MODE_KINDS

MODES = ("loop", *MODE_KINDS, "eval_corrupted", *DEPRECATED_MODES)
EVAL_BENCHMARKS = ("clean", "imagenet_a", "imagenet_r", "imagenet_c", "imagenet_p")
STRATEGIES = ("default", "mirrored", "multi_worker", "tpu")
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")

FLAGS = flags.FLAGS

# What to run and where.
flags.DEFINE_enum(
    "mode",
    "loop",
    MODES,
    "Stage to run; 'loop' runs every stage in order and resumes at the first incomplete one; "
    "'teacher' trains the teacher ('train' is its deprecated spelling).",
)
flags.DEFINE_string("run_dir", None, "Run directory: checkpoints, pseudo labels, manifest.")
flags.DEFINE_integer(
    "iteration",
    1,
    "Iteration that --mode=label|filter|student|eval works on (eval: 0 is the teacher).",
)
flags.DEFINE_bool("quiet", False, "No progress bars.")
flags.DEFINE_bool(
    "traceback",
    False,
    "Show the Python stack of an error after validation (default: one line and exit status 2).",
)
flags.DEFINE_bool(
    "redo_changed_stages",
    False,
    "Redo the finished stages whose settings differ from this command's (their outputs are "
    "deleted first) instead of stopping with the list of differing flags.",
)

# Data.
flags.DEFINE_string(
    "label_data",
    None,
    "Labeled TFRecords: a file pattern or comma-separated patterns (ImageNet layout), or "
    "'tfds:NAME' for a TensorFlow Datasets source.",
)
flags.DEFINE_string(
    "unlabel_data", None, "Unlabeled TFRecords: a file pattern or comma-separated patterns."
)
flags.DEFINE_string(
    "eval_data",
    None,
    "Evaluation TFRecords: a file pattern or comma-separated patterns, or 'tfds:NAME'.",
)
flags.DEFINE_integer(
    "label_offset",
    1,
    "Subtracted from stored labels (1 for ImageNet-style 1-based files, 0 for 0-based).",
)
flags.DEFINE_integer("num_classes", 1000, "Number of classes.")
flags.DEFINE_bool(
    "strict_data",
    False,
    "Stop with an error naming the file and record at a damaged TFRecord file or an undecodable "
    "image. Default: a damaged file loses only the records after the damage, an undecodable "
    "image is skipped, and every stage reports the totals.",
)
flags.DEFINE_integer(
    "num_train_images", None, "Labeled images per epoch; counted from the files when unset."
)

# Models.
flags.DEFINE_string("teacher_model", "efficientnet-b0", "Teacher architecture (b0..b8, l2).")
flags.DEFINE_string(
    "teacher_checkpoint",
    None,
    "Use this trained teacher (.keras or .weights.h5) instead of training one.",
)
flags.DEFINE_list(
    "student_models",
    ["efficientnet-b0"],
    "Student architecture per iteration, e.g. b0,b1,b2 runs three iterations.",
)
flags.DEFINE_bool("allow_smaller_student", False, "Allow a student smaller than its teacher.")
flags.DEFINE_enum(
    "student_init",
    "scratch",
    ["scratch", "teacher"],
    "scratch: students start from random weights (the paper); teacher: each student starts from "
    "its teacher's EMA weights (the reference's --init_model; same architecture and image size "
    "only), so teacher + student steps are one continued training run.",
)
flags.DEFINE_integer(
    "image_size", None, "Input size; defaults to each model's resolution (32 with --small_images)."
)
flags.DEFINE_bool("small_images", False, "32x32 variant (CIFAR/SVHN): stride-1 stages 2-3.")
flags.DEFINE_float("width_coefficient", None, "Override the width multiplier of every model.")
flags.DEFINE_float("depth_coefficient", None, "Override the depth multiplier of every model.")

# Training recipe.
flags.DEFINE_integer("train_batch_size", 128, "Labeled images per global batch.")
flags.DEFINE_integer("eval_batch_size", 256, "Images per evaluation/labeling batch.")
flags.DEFINE_float("train_epochs", 350, "Epochs of labeled data for the teacher.")
flags.DEFINE_float(
    "student_epochs",
    None,
    "Epochs of labeled data for students (default: --train_epochs x --student_train_ratio).",
)
flags.DEFINE_float(
    "student_train_ratio",
    None,
    "Student steps = ratio x teacher steps (the reference's train_ratio; its staircase period "
    "scales by the ratio too). Exclusive with --student_epochs; default 1.",
)
flags.DEFINE_enum(
    "optimizer",
    "rmsprop",
    ["rmsprop", "momentum", "adamw"],
    "rmsprop: the reference's TF1 RMSProp; momentum: SGD with Nesterov momentum 0.9; adamw: "
    "Keras AdamW with decoupled --weight_decay (x learning rate, batch norm excluded).",
)
flags.DEFINE_float("base_learning_rate", 0.016, "Learning rate per 256 labeled images.")
flags.DEFINE_float(
    "final_base_lr",
    None,
    "Learning rate per 256 labeled images at the last step (the reference's flag): sets the "
    "staircase period of 'exponential' so it ends there, and the floor of 'cosine'.",
)
flags.DEFINE_enum(
    "lr_schedule",
    "exponential",
    ["exponential", "cosine", "constant"],
    "Learning rate schedule after warm-up.",
)
flags.DEFINE_enum(
    "student_lr_schedule",
    None,
    ["exponential", "cosine", "constant"],
    "Students' schedule (default: --lr_schedule). Short teachers on few labels may learn best "
    "without annealing while their longer students need it (configs/demo.cfg).",
)
flags.DEFINE_float(
    "student_final_base_lr", None, "Students' --final_base_lr (default: --final_base_lr)."
)
flags.DEFINE_float("lr_warmup_epochs", 5.0, "Linear warm-up epochs.")
flags.DEFINE_float(
    "lr_decay_epochs", 2.4, "Epochs per x0.97 staircase step (ignored with --final_base_lr)."
)
flags.DEFINE_float("weight_decay", 1e-5, "Weight decay on 0.5*||w||^2, batch norm excluded.")
flags.DEFINE_float("label_smoothing", 0.1, "Label smoothing (labeled and hard pseudo labels).")
flags.DEFINE_float("moving_average_decay", 0.9999, "EMA decay (with (1+n)/(10+n) warm-up).")
flags.DEFINE_float("dropout_rate", None, "Dropout before the classifier (default: preset).")
flags.DEFINE_float(
    "stochastic_depth_rate", 0.2,
    "Stochastic depth: the drop rate of the last block (earlier blocks scale it linearly).")
flags.DEFINE_enum("precision", "float32", PRECISIONS, "Compute precision.")
flags.DEFINE_integer(
    "steps_per_loop",
    10,
    "Training steps per call into TensorFlow (the reference's iterations_per_loop); loops also "
    "end at checkpoint, summary and epoch boundaries. A NaN loss is caught at the loop's end.",
)
flags.DEFINE_integer("checkpoint_every", 500, "Steps between checkpoints.")
flags.DEFINE_integer("summary_every", 100, "Steps between TensorBoard scalar summaries.")

# Noise and self-training.
flags.DEFINE_integer("randaug_num_layers", 2, "RandAugment ops per image for students (0 = off).")
flags.DEFINE_float("randaug_magnitude", 10.0, "RandAugment magnitude M (max level 10).")
flags.DEFINE_bool("teacher_randaug", False, "Also use RandAugment when training the teacher.")
flags.DEFINE_float(
    "unlabel_ratio",
    1.0,
    "Unlabeled images per labeled image in a batch; also the weight of the unlabeled loss.",
)
flags.DEFINE_float(
    "teacher_softmax_temp", 1.0, "Temperature of soft pseudo labels; -1 for hard one-hot labels."
)
flags.DEFINE_enum(
    "pseudo_label_storage",
    "float16",
    ["float32", "float16", "topk:5", "topk:10"],
    "How pseudo-label distributions are stored.",
)
flags.DEFINE_float("min_threshold", 0.3, "Lowest confidence a pseudo label may have.")
flags.DEFINE_integer(
    "num_image_per_class",
    None,
    "Balanced images per class after filtering (default: unlabeled images / classes).",
)
flags.DEFINE_bool(
    "on_the_fly_teacher",
    False,
    "Run the teacher inside the student's training step instead of storing pseudo labels.",
)

# Distribution.
flags.DEFINE_enum("strategy", "default", STRATEGIES, "tf.distribute strategy.")
flags.DEFINE_string("tpu", None, "TPU address for --strategy=tpu.")
flags.DEFINE_integer("worker_index", None, "This worker for labeling (default: TF_CONFIG).")
flags.DEFINE_integer("num_workers", None, "Number of labeling workers (default: TF_CONFIG).")
flags.DEFINE_float("wait_timeout", 6 * 3600.0, "Seconds a worker waits for the others' part of "
                   "a stage (multi-worker labeling and filtering).")

# Evaluation (--mode=eval / eval_corrupted; python -m noisy_student.evaluate_cli has more).
flags.DEFINE_enum(
    "eval_benchmark",
    "clean",
    EVAL_BENCHMARKS,
    "--mode=eval benchmark: 'clean' scores --eval_data and records it in the manifest; the "
    "others read --eval_benchmark_data (released folder layout or tfds:NAME).",
)
flags.DEFINE_string(
    "eval_benchmark_data",
    None,
    "Data of --eval_benchmark, or the output folder of noisy-student-make-corrupted for "
    "--mode=eval_corrupted.",
)
flags.DEFINE_string(
    "baseline_errors",
    None,
    "--mode=eval_corrupted: JSON of a baseline model's errors per corruption (normalizes mCE).",
)

# Export.
flags.DEFINE_string("export_dir", None, "SavedModel directory (default: RUN_DIR/export).")


class FlagError(ValueError):
    """A flag value that cannot work; the message says which flag and what to do."""


# Allowed ranges of numeric flags: (low, low inclusive, high, high inclusive); None = open.
# A flag left unset (None) is not checked.
RANGES = {
    "train_batch_size": (0, False, None, False),
    "eval_batch_size": (0, False, None, False),
    "num_classes": (0, False, None, False),
    "num_train_images": (0, False, None, False),
    "num_image_per_class": (0, False, None, False),
    "label_offset": (0, True, None, False),
    "image_size": (32, True, None, False),
    "width_coefficient": (0, False, None, False),
    "depth_coefficient": (0, False, None, False),
    "train_epochs": (0, False, None, False),
    "student_epochs": (0, False, None, False),
    "student_train_ratio": (0, False, None, False),
    "lr_warmup_epochs": (0, True, None, False),
    "lr_decay_epochs": (0, False, None, False),
    "base_learning_rate": (0, False, None, False),
    "final_base_lr": (0, True, None, False),
    "student_final_base_lr": (0, True, None, False),
    "weight_decay": (0, True, None, False),
    "label_smoothing": (0, True, 1, False),
    "moving_average_decay": (0, True, 1, False),
    "dropout_rate": (0, True, 1, False),
    "stochastic_depth_rate": (0, True, 1, False),
    "steps_per_loop": (0, False, None, False),
    "checkpoint_every": (0, False, None, False),
    "summary_every": (0, False, None, False),
    "randaug_num_layers": (0, True, None, False),
    "randaug_magnitude": (0, True, None, False),
    "unlabel_ratio": (0, False, None, False),
    "min_threshold": (0, True, 1, True),
    "worker_index": (0, True, None, False),
    "num_workers": (0, False, None, False),
    "wait_timeout": (0, False, None, False),
}


def _range_text(low, low_inclusive, high, high_inclusive) -> str:
    if high is None:
        return f"must be {'>=' if low_inclusive else '>'} {low}"
    opening, closing = "[" if low_inclusive else "(", "]" if high_inclusive else ")"
    return f"must be in {opening}{low}, {high}{closing}"


def _check_ranges() -> None:
    """Every numeric flag of RANGES that is set lies in its range."""
    for name, (low, low_inclusive, high, high_inclusive) in RANGES.items():
        value = FLAGS[name].value
        if value is None:
            continue
        above = value >= low if low_inclusive else value > low
        below = high is None or (value <= high if high_inclusive else value < high)
        if not (above and below):
            bounds = _range_text(low, low_inclusive, high, high_inclusive)
            raise FlagError(f"--{name} {bounds}, got {value}.")


def _check_pattern(name: str, patterns: str | None, required: bool) -> None:
    """Each comma-separated pattern of --name must have an existing directory and match files."""
    if patterns is None:
        if required:
            raise FlagError(f"--{name} is required for --mode={FLAGS.mode}.")
        return
    if patterns.startswith("tfds:"):
        return
    for pattern in (p.strip() for p in patterns.split(",")):
        if not pattern:
            raise FlagError(f"--{name}={patterns!r} has an empty entry between commas.")
        directory = os.path.dirname(pattern) or "."
        if not os.path.isdir(directory):
            raise FlagError(f"--{name}: directory {directory!r} does not exist.")
        if not glob.glob(pattern):
            raise FlagError(f"--{name}: pattern {pattern!r} matches no files.")


def needed_data(mode: str, have_teacher: bool) -> dict[str, bool]:
    """Which data flags a mode needs."""
    mode = DEPRECATED_MODES.get(mode, mode)
    train = mode in ("loop", "teacher", "student") and not (mode == "teacher" and have_teacher)
    return {
        "label_data": train,
        "unlabel_data": mode in ("loop", "label", "student"),
        "eval_data": mode == "eval" and FLAGS.eval_benchmark == "clean",
    }


def validate() -> None:
    """Checks every flag before work starts; raises FlagError with one clear message."""
    from efficientnet_tf.scaling import canonical_name

    if not FLAGS.run_dir:
        raise FlagError("--run_dir is required: the run's checkpoints and state live there.")
    try:
        chain = [canonical_name(n) for n in [FLAGS.teacher_model, *FLAGS.student_models]]
    except ValueError as err:
        raise FlagError(str(err)) from err
    if not FLAGS.student_models and FLAGS.mode in ("loop", "student"):
        raise FlagError("--student_models needs at least one model.")
    if FLAGS.student_init == "teacher":
        if len(set(chain)) > 1:
            raise FlagError(
                "--student_init=teacher starts each student from its teacher's weights, so every "
                f"model must be the same; got {', '.join(chain)}. Use --student_init=scratch "
                "for larger students.")
    if FLAGS.mode == "eval_corrupted" and not (FLAGS.eval_benchmark_data and FLAGS.baseline_errors):
        raise FlagError(
            "--mode=eval_corrupted needs --eval_benchmark_data (from noisy-student-make-corrupted) "
            "and --baseline_errors."
        )
    if FLAGS.mode == "eval" and FLAGS.eval_benchmark != "clean" and not FLAGS.eval_benchmark_data:
        raise FlagError(f"--eval_benchmark={FLAGS.eval_benchmark} needs --eval_benchmark_data.")
    lowest = 0 if FLAGS.mode in ("eval", "eval_corrupted") else 1
    if not lowest <= FLAGS.iteration <= len(FLAGS.student_models):
        raise FlagError(
            f"--iteration={FLAGS.iteration} is outside {lowest}..{len(FLAGS.student_models)} "
            "(one iteration per entry of --student_models)."
        )
    if FLAGS.teacher_checkpoint and not os.path.exists(FLAGS.teacher_checkpoint):
        raise FlagError(f"--teacher_checkpoint {FLAGS.teacher_checkpoint!r} does not exist.")
    for flag, required in needed_data(FLAGS.mode, bool(FLAGS.teacher_checkpoint)).items():
        _check_pattern(flag, getattr(FLAGS, flag), required)
    _check_pattern("eval_data", FLAGS.eval_data, False)
    _check_ranges()
    if FLAGS.student_epochs is not None and FLAGS.student_train_ratio is not None:
        raise FlagError("Give --student_epochs or --student_train_ratio, not both.")
    schedules = {
        "": (FLAGS.lr_schedule, FLAGS.final_base_lr),
        "student_": (
            FLAGS.student_lr_schedule or FLAGS.lr_schedule,
            FLAGS.final_base_lr if FLAGS.student_final_base_lr is None
            else FLAGS.student_final_base_lr,
        ),
    }
    for prefix, (schedule, final) in schedules.items():
        if final is not None and not 0 <= final < FLAGS.base_learning_rate:
            raise FlagError(
                f"--{prefix}final_base_lr={final} must be in [0, --base_learning_rate="
                f"{FLAGS.base_learning_rate})."
            )
        if final == 0 and schedule == "exponential":
            raise FlagError(
                f"--{prefix}final_base_lr=0 cannot be reached by a staircase; use a value > 0."
            )
    if FLAGS.teacher_softmax_temp <= 0 and FLAGS.teacher_softmax_temp != -1:
        raise FlagError("--teacher_softmax_temp must be > 0, or -1 for hard labels.")
    if abs(FLAGS.min_threshold * 100 - round(FLAGS.min_threshold * 100)) > 1e-6:
        raise FlagError(
            f"--min_threshold={FLAGS.min_threshold} must be on the 0.01 grid of the confidence "
            "histogram (e.g. 0.3)."
        )
    if (FLAGS.worker_index is None) != (FLAGS.num_workers is None):
        raise FlagError("Give both --worker_index and --num_workers, or neither (TF_CONFIG).")
    if FLAGS.worker_index is not None and FLAGS.worker_index >= FLAGS.num_workers:
        raise FlagError(
            f"--worker_index={FLAGS.worker_index} must be below --num_workers={FLAGS.num_workers}."
        )
    if FLAGS.strategy == "tpu" and not FLAGS.tpu and "TPU_NAME" not in os.environ:
        raise FlagError("--strategy=tpu needs --tpu=ADDRESS (or TPU_NAME in the environment).")
    if FLAGS.strategy == "multi_worker" and "TF_CONFIG" not in os.environ:
        raise FlagError("--strategy=multi_worker needs TF_CONFIG describing the cluster.")
