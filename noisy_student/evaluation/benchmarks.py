"""One benchmark on one model, as ``noisy-student-eval`` and ``noisy-student --mode=eval`` run it:
``EvalOptions`` says which model (a ``.keras`` file, a model folder or a run directory), which
benchmark (clean accuracy, ImageNet-A/R/C/P, our corrupted sets) on which data, and where its
outputs go (default: ``<run dir>/eval/iterN/``); ``evaluate_benchmark`` loads the model, runs the
benchmark and writes its JSON and figures, and records a run directory model's result in the
run's manifest (``run_record``), where the reports read it. No TensorFlow at import (``--help``
stays fast).
"""

from __future__ import annotations

import dataclasses
import json
import os
import time

from noisy_student.run import layout as run_layout

BENCHMARKS = ("clean", "imagenet_a", "imagenet_r", "imagenet_c", "imagenet_p", "corrupted")
# What a run's manifest keeps of a result (when present); its JSON beside the figures has all.
RECORDED_KEYS = ("top1", "top5", "num_examples", "mCE", "relative_mCE", "mean_error", "mFR",
                 "mean_flip_probability", "partial", "source")
# The run settings that evaluating one of its models takes as they are (EvalOptions.for_run).
RUN_SETTINGS = ("num_classes", "small_images", "image_size", "label_offset")


@dataclasses.dataclass
class EvalOptions:
    """What to evaluate, and how; the fields are the flags of ``noisy-student-eval`` of the same
    names."""

    model: str
    benchmark: str = "clean"
    data: str | None = None
    iteration: int = -1
    ema: bool = True
    arch: str | None = None
    num_classes: int = 1000
    small_images: bool = False
    width_coefficient: float | None = None
    depth_coefficient: float | None = None
    image_size: int | None = None
    label_offset: int = 1
    labels: str | None = None
    batch_size: int = 64
    output_dir: str | None = None
    baseline_errors: str | None = None
    clean_error: float | None = None
    alexnet_clean_error: float | None = None
    corruptions: list[str] | None = None
    severities: list[int] | None = None
    perturbations: list[str] | None = None
    difficulty: int = 1
    baseline_flip_probabilities: str | None = None
    max_steps: int | None = None
    max_videos: int | None = None
    strict: bool = False

    @classmethod
    def for_run(cls, config, iteration: int, **chosen) -> EvalOptions:
        """The options that evaluate the model of ``iteration`` (0 = teacher) of the run of
        ``config`` (a ``RunConfig``), built as its pipeline builds it; ``chosen``: the
        benchmark, its data and other options."""
        models = [config.teacher_model, *config.student_models]
        return cls(model=config.run_dir, iteration=iteration, arch=models[iteration],
                   batch_size=config.eval_batch_size,
                   **{name: getattr(config, name) for name in RUN_SETTINGS},
                   **config.model_coefficients(iteration), **chosen)


def model_builder(options: EvalOptions):
    """A function building ``options.arch`` with its overrides (checkpoints need one), or None."""
    if not options.arch:
        return None

    def build():
        from efficientnet_tf import create_model

        overrides = {"classes": options.num_classes, "small_images": options.small_images,
                     "classifier_activation": None}
        if options.image_size:
            overrides["input_shape"] = (options.image_size, options.image_size, 3)
        for key in ("width_coefficient", "depth_coefficient"):
            if getattr(options, key) is not None:
                overrides[key] = getattr(options, key)
        return create_model(options.arch, **overrides)

    return build


def default_output_dir(options: EvalOptions, info: dict) -> str:
    if options.output_dir:
        return options.output_dir
    if info.get("run_dir"):
        return os.path.join(info["run_dir"], run_layout.eval_dir(info["iteration"]))
    base = info.get("model_dir") or os.path.dirname(os.path.abspath(options.model))
    return os.path.join(base, run_layout.EVAL_DIR)


def class_names(options: EvalOptions, run_dir: str | None) -> list[str] | None:
    """Class names for plots and per-class results: ``--labels`` (which must fit), else the
    ``labels.txt`` beside the records, else the run directory's copy; None (indices) without.
    Class-folder trees name their classes by folder instead."""
    from noisy_student.data import labels_file
    from noisy_student.evaluation import sources

    if options.labels is None and sources.is_class_folder(options.data):
        return None
    if options.labels is not None:
        names = labels_file.read_class_names(options.labels)
        if len(names) != options.num_classes:
            raise ValueError(f"{options.labels}: {len(names)} class names for --num_classes="
                             f"{options.num_classes}")
        return names
    path = labels_file.labels_file_beside(options.data) or (
        os.path.join(run_dir, labels_file.LABELS_FILE) if run_dir else None)
    return labels_file.class_names_or_none(path, options.num_classes)


def run_record(result: dict, output_dir: str, run_dir: str, seconds: float) -> dict:
    """What a run's manifest records of a benchmark's result: its headline figures, the
    weights evaluated, its JSON and figures (paths relative to the run directory when inside
    it) and the time it took."""

    def path(name: str) -> str:
        relative = os.path.relpath(name, run_dir)
        return name if relative.startswith("..") else relative

    record = {key: result[key] for key in RECORDED_KEYS if result.get(key) is not None}
    return {**record, "weights": result["model"].get("weights"), "seconds": round(seconds, 1),
            "json": path(os.path.join(output_dir, f"{result['benchmark']}.json")),
            "figures": [path(v) for k, v in sorted(result.items()) if k.endswith("_png")]}


def result_text(result: dict) -> str:
    """A benchmark's result for the terminal: its table, or its headline numbers."""
    if "table" in result:
        return result["table"]
    keys = ("benchmark", "top1", "top5", "num_examples", "mean_error", "report")
    return json.dumps({k: result[k] for k in keys if k in result}, indent=1)


def evaluate_benchmark(options: EvalOptions) -> dict:
    """Loads the model, runs the benchmark, writes its outputs; returns its result. The result
    of a run directory's model is also recorded in the run's manifest (``run_record``)."""
    from noisy_student.evaluation import classification, loading, robustness, sources
    from noisy_student.evaluation.metrics import IMAGENET_C_CORRUPTIONS, IMAGENET_P_PERTURBATIONS

    if options.benchmark not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {options.benchmark!r}; use one of {BENCHMARKS}")
    if options.benchmark in ("clean", "imagenet_p", "corrupted") and not options.data:
        raise ValueError(f"--benchmark={options.benchmark} needs --data")
    start = time.time()
    model, info = loading.load_model(options.model, iteration=options.iteration,
                                        ema=options.ema, model_fn=model_builder(options))
    size = loading.model_image_size(model, options.image_size)
    out = default_output_dir(options, info)
    common = {"image_size": size, "small_images": options.small_images, "output_dir": out}
    b = options.benchmark
    if b == "clean":
        folder = sources.is_class_folder(options.data)
        names = class_names(options, info.get("run_dir"))
        if folder and names is None:
            names = sources.list_class_folders(options.data)[2]
        dataset = sources.labeled_source(
            options.data, image_size=size, batch_size=options.batch_size,
            num_classes=options.num_classes, label_offset=options.label_offset,
            small_images=options.small_images, strict=options.strict)
        result = classification.evaluate_classification(
            model, dataset, num_classes=options.num_classes, class_names=names,
            output_dir=out, max_steps=options.max_steps,
            extra={"source": options.data})
    elif b in ("imagenet_a", "imagenet_r"):
        result = classification.evaluate_subset(model, b, options.data,
                                            batch_size=options.batch_size,
                                            max_steps=options.max_steps, strict=options.strict,
                                            **common)
    elif b == "imagenet_c":
        result = robustness.evaluate_imagenet_c(
            model, options.data or "tfds:imagenet2012_corrupted", batch_size=options.batch_size,
            corruptions=options.corruptions or IMAGENET_C_CORRUPTIONS,
            severities=options.severities or robustness.ALL_SEVERITIES,
            clean_error=options.clean_error, alexnet_clean_error=options.alexnet_clean_error,
            max_steps=options.max_steps, strict=options.strict, **common)
    elif b == "imagenet_p":
        baseline = None
        if options.baseline_flip_probabilities:
            with open(options.baseline_flip_probabilities) as f:
                baseline = json.load(f)
        result = robustness.evaluate_imagenet_p(
            model, options.data, perturbations=options.perturbations or IMAGENET_P_PERTURBATIONS,
            difficulty=options.difficulty, baseline_flip_probabilities=baseline,
            max_videos=options.max_videos, **common)
    else:
        result = robustness.evaluate_corrupted(
            model, options.data, baseline_path=options.baseline_errors,
            num_classes=options.num_classes, batch_size=options.batch_size,
            label_offset=options.label_offset, corruptions=options.corruptions,
            severities=options.severities,
            clean_error=options.clean_error, max_steps=options.max_steps,
            strict=options.strict, **common)
    result.update(benchmark=b, model=info)
    if info.get("run_dir"):
        from noisy_student.run.directory import record_evaluation

        record_evaluation(info["run_dir"], info["iteration"], b,
                          run_record(result, out, info["run_dir"], time.time() - start))
    return result
