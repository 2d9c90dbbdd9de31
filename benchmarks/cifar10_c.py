"""CIFAR-10-C from the shared CIFAR-10 test set, and every model's mCE relative to the first one.

The Noisy Student paper claims that the student is also more robust than its teacher; this
measures that on CIFAR-10 (issue #11 item 7):

1. Data, built once. The input is the validation split of ``self_training_cifar10.py`` (the
   10,000 CIFAR-10 test images as PNG TFRecords, 1-based labels; built when missing, that split
   only, from ../shared/data/cifar10 or $CIFAR10_NPZ_DIR) or any labeled TFRecord pattern
   (--input; e.g. the demo's 2,000 held-out images,
   ``noisy_student/assets/sample_data/cifar10/validation-*``). Its first --max_images records
   are copied to ``<data_dir>/clean/``, and
   ``noisy_student.evaluation.corruptions.make_corrupted`` (the code of
   ``noisy-student-make-corrupted``) writes their 15 corruptions x 5 severities to
   ``<data_dir>/corrupted/<corruption>/<severity>/`` (PNG, noise seeded per image), one
   corruption per job on --workers processes, the slowest first. A rerun skips finished
   corruptions; ``<data_dir>/build.json`` records the input and refuses another one.
2. Evaluation, per model. Each --models entry (``RUN_DIR@N``: 0 = teacher, N = student N, as
   noisy-student-cam takes them; a model directory; a ``.keras`` file) is evaluated with its
   EMA weights on the clean copy (``classification.evaluate_classification``) and on every
   corrupted set (``robustness.evaluate_corrupted``, the code of ``noisy-student-eval
   --benchmark=corrupted``). Results go to ``<out_dir>/models/<k>_<spec>/``; a rerun reuses
   them (--reevaluate to redo them, e.g. after retraining a model).
3. Report: error per corruption, CE per corruption and mCE normalized by the FIRST model's
   errors (``robustness.corruption_metrics``, so the first model's mCE is 100 by
   construction), relative mCE, clean and mean corruption error, as
   ``<out_dir>/cifar10_c.md``, ``cifar10_c.json`` and a bar chart ``cifar10_c_ce.png``
   (each written atomically).

    python benchmarks/cifar10_c.py --measure_speed=50           # img/s per corruption, no data
    python benchmarks/cifar10_c.py --models=demo_run@0,demo_run@1 --names=teacher,student
    python benchmarks/cifar10_c.py --models=demo_run@0,demo_run@1 --max_images=2000
    python benchmarks/cifar10_c.py --workers=2                  # build the data only
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from self_training_cifar10 import CIFAR_DIR, DATA_DIR, ROOT, _fmt_time, build_data  # noqa: E402

sys.path.insert(0, ROOT)
from noisy_student.evaluation.metrics import IMAGENET_C_CORRUPTIONS, NUM_SEVERITIES  # noqa: E402

DEFAULT_INPUT = os.path.join(DATA_DIR, "validation-*")
SPLIT = "validation"
BUILD_FILE = "build.json"
# The slowest corruptions on 32x32 images (measured, see BUILD.md), started first so that the
# workers finish together.
SLOWEST_FIRST = ("glass_blur", "frost", "zoom_blur")
REPORT_NAME = "cifar10_c"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="", help="Comma list of models, the baseline "
                        "first: RUN_DIR@N (0 = teacher, N = student N; RUN_DIR alone = its "
                        "last model), model directories, .keras files.")
    parser.add_argument("--names", default="", help="Comma list of display names, one per "
                        "model (default: e.g. 'demo_run teacher').")
    parser.add_argument("--input", default=None, help="Labeled TFRecord pattern to corrupt "
                        f"(default: the 10,000 CIFAR-10 test images, {DEFAULT_INPUT}, built "
                        "from --cifar_dir when missing).")
    parser.add_argument("--cifar_dir", default=CIFAR_DIR, help="The CIFAR-10 npz shards.")
    parser.add_argument("--max_images", type=int, default=None,
                        help="Use only the first N input records (default: all).")
    parser.add_argument("--corruptions", default=",".join(IMAGENET_C_CORRUPTIONS),
                        help="Comma list (default: all 15; mCE is then over those given).")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the random corruptions.")
    parser.add_argument("--workers", type=int, default=2,
                        help="Processes generating corruptions (one corruption per job).")
    parser.add_argument("--data_dir", default=None, help="Where clean/ and corrupted/ go "
                        "(default: runs/cifar10_c/<input>_n<N>).")
    parser.add_argument("--out_dir", default=None, help="Where the report and per-model "
                        "results go (default: runs/cifar10_c/results_<data dir name>_vs_<first "
                        "model>).")
    parser.add_argument("--batch_size", type=int, default=500, help="Evaluation batch size.")
    parser.add_argument("--num_classes", type=int, default=None,
                        help="Classes of the models (default: their output size).")
    parser.add_argument("--small_images", action=argparse.BooleanOptionalAction, default=True,
                        help="32x32-style preprocessing (CIFAR models); --no-small_images "
                        "for models trained with standard strides.")
    parser.add_argument("--image_size", type=int, default=None,
                        help="Input side (default: the model's).")
    parser.add_argument("--label_offset", type=int, default=1,
                        help="Subtracted from the records' labels (ours are 1-based).")
    parser.add_argument("--reevaluate", action="store_true",
                        help="Evaluate every model again instead of reusing its results.")
    parser.add_argument("--measure_speed", type=int, default=0, metavar="N",
                        help="Only time each corruption (all severities) on the first N "
                        "input images and estimate the build time; writes no data set.")
    args = parser.parse_args(argv)
    args.models = [m for m in args.models.split(",") if m]
    args.names = [n for n in args.names.split(",") if n]
    args.corruptions = [c for c in args.corruptions.split(",") if c]
    unknown = [c for c in args.corruptions if c not in IMAGENET_C_CORRUPTIONS]
    if unknown:
        parser.error(f"unknown corruption(s) {unknown}; use some of {IMAGENET_C_CORRUPTIONS}")
    if args.names and len(args.names) != len(args.models):
        parser.error(f"{len(args.names)} --names for {len(args.models)} --models")
    if args.max_images is not None and args.max_images < 1:
        parser.error("--max_images must be >= 1")
    return args


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "x"


# ----------------------------------------------------------------------------- data


def input_pattern(args: argparse.Namespace) -> str:
    """--input, or the CIFAR-10 test records (their split built when missing)."""
    if args.input:
        return args.input
    build_data(DATA_DIR, args.cifar_dir, ("validation",))
    return DEFAULT_INPUT


def write_records(path: str, examples) -> None:
    """(encoded image, stored label, _) tuples as one labeled TFRecord file, atomically."""
    from noisy_student.data import records

    with records.atomic_tfrecord_writer(path) as writer:
        for data, label, _ in examples:
            writer.write(records.encode_labeled(data, label))


def _job_order(corruptions: list[str]) -> list[str]:
    slow = [c for c in SLOWEST_FIRST if c in corruptions]
    return slow + [c for c in corruptions if c not in slow]


def prepare_data(args: argparse.Namespace, pattern: str, progress=print) -> dict:
    """The clean copy and the corrupted sets of the first --max_images records of ``pattern``
    (built where missing); returns {"data_dir", "clean", "corrupted", "num_images",
    "labels", "build"}."""
    import numpy as np

    from noisy_student.atomic_io import (
        read_json,
        remove_stale_temps,
        write_json_atomic,
        write_text_atomic,
    )
    from noisy_student.data.labels_file import LABELS_FILE, labels_file_beside
    from noisy_student.evaluation.corruptions import read_labeled_records

    examples = read_labeled_records(pattern, args.max_images)
    n = len(examples)
    if args.data_dir:
        data_dir = os.path.abspath(args.data_dir)
    else:
        name = "test" if pattern == DEFAULT_INPUT else _slug(
            os.path.basename(os.path.dirname(os.path.abspath(pattern))))
        data_dir = os.path.join(ROOT, "runs", "cifar10_c", f"{name}_n{n}")
    settings = {"input": os.path.abspath(pattern), "num_images": n, "seed": args.seed,
                "image_format": "png"}
    build_path = os.path.join(data_dir, BUILD_FILE)
    build = read_json(build_path) or {}
    changed = {k: (build[k], v) for k, v in settings.items() if k in build and build[k] != v}
    if changed:
        raise SystemExit(f"{build_path}: this data set was built with other settings "
                         f"({', '.join(f'{k}: {a!r}, now {b!r}' for k, (a, b) in changed.items())}"
                         f"); delete {data_dir} or give another --data_dir")
    os.makedirs(data_dir, exist_ok=True)
    remove_stale_temps(data_dir)
    labels = np.asarray([label for _, label, _ in examples])
    build = {**build, **settings, "done": build.get("done", []),
             "seconds": build.get("seconds", {}),
             "per_label": {str(k): int(v) for k, v in zip(*np.unique(labels, return_counts=True),
                                                             strict=True)}}
    write_json_atomic(build_path, build)
    clean = os.path.join(data_dir, "clean", f"{SPLIT}-00000-of-00001")
    if not os.path.exists(clean):
        os.makedirs(os.path.dirname(clean), exist_ok=True)
        write_records(clean, examples)
    corrupted = os.path.join(data_dir, "corrupted")
    os.makedirs(corrupted, exist_ok=True)
    labels_file = None
    source_labels = labels_file_beside(pattern)
    if source_labels:  # written here, not by make_corrupted: its workers would all copy it
        with open(source_labels) as f:
            text = f.read()
        labels_file = os.path.join(data_dir, LABELS_FILE)
        for path in (labels_file, os.path.join(corrupted, LABELS_FILE)):
            write_text_atomic(path, text)
    del examples
    todo = [c for c in _job_order(args.corruptions)
            if c not in build["done"] or not os.path.isdir(os.path.join(corrupted, c))]
    if todo:
        progress(f"data: corrupting {n} images ({len(todo)} corruptions x {NUM_SEVERITIES} "
                 f"severities) into {corrupted} on {min(args.workers, len(todo))} process(es)")

    def finished(corruption: str, seconds: float) -> None:
        build["done"] = [c for c in IMAGENET_C_CORRUPTIONS
                         if c in build["done"] or c == corruption]
        build["seconds"][corruption] = round(seconds, 1)
        write_json_atomic(build_path, build)
        progress(f"data: {corruption} done in {_fmt_time(seconds)} "
                 f"({NUM_SEVERITIES * n / max(seconds, 1e-9):.0f} img/s)")

    run_corruption_jobs(os.path.join(os.path.dirname(clean), f"{SPLIT}-*"), corrupted, todo,
                        seed=args.seed, workers=args.workers, on_done=finished)
    return {"data_dir": data_dir, "clean": os.path.join(os.path.dirname(clean), f"{SPLIT}-*"),
            "corrupted": corrupted, "num_images": n, "labels": labels_file, "build": build}


def run_corruption_jobs(pattern: str, output_dir: str, corruptions: list[str], *, seed: int,
                        workers: int, on_done) -> None:
    """make_corrupted for each corruption (all severities), on ``workers`` processes."""
    from noisy_student.evaluation.corruptions import make_corrupted

    common = {"split": SPLIT, "image_format": "png", "seed": seed}
    if workers <= 1 or len(corruptions) <= 1:
        for c in corruptions:
            start = time.time()
            make_corrupted(pattern, output_dir, corruptions=[c], **common)
            on_done(c, time.time() - start)
        return
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    # spawn: a fresh interpreter per worker (forking a process that loaded TensorFlow is unsafe)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(workers, len(corruptions)),
                             mp_context=context) as pool:
        pending, started = {}, {}
        queue = list(corruptions)
        while queue or pending:
            while queue and len(pending) < workers:  # submit as workers free up, so the
                c = queue.pop(0)  # start time (and the time per corruption) is the job's own
                pending[pool.submit(make_corrupted, pattern, output_dir, corruptions=[c],
                                    **common)] = c
                started[c] = time.time()
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                c = pending.pop(future)
                future.result()  # a worker's exception stops the build here
                on_done(c, time.time() - started[c])


def measure_speed(args: argparse.Namespace, pattern: str) -> dict:
    """Speed of each corruption (5 severities; decode + corrupt + PNG + write, one process) on
    the first --measure_speed images, as wall time and as CPU time of this process (what the
    build would take on free cores when the machine is shared), and the build time implied
    for the first --max_images (default all) input images on --workers processes."""
    from noisy_student.evaluation.corruptions import make_corrupted, read_labeled_records

    sample = read_labeled_records(pattern, args.measure_speed)
    target = len(read_labeled_records(pattern, args.max_images))
    images = NUM_SEVERITIES * len(sample)
    wall, cpu = {}, {}
    with tempfile.TemporaryDirectory(prefix="cifar10_c_speed_") as tmp:
        clean = os.path.join(tmp, f"{SPLIT}-00000-of-00001")
        write_records(clean, sample)
        for c in args.corruptions:
            start, start_cpu = time.perf_counter(), time.process_time()
            make_corrupted(clean, os.path.join(tmp, "out"), corruptions=[c], seed=args.seed,
                           progress=lambda message: None)
            wall[c] = (time.perf_counter() - start) / images
            cpu[c] = (time.process_time() - start_cpu) / images

    def estimate(per_image: dict) -> tuple[float, float]:
        """(one process, --workers processes: longest job first onto the least loaded)."""
        jobs = sorted((NUM_SEVERITIES * target * s for s in per_image.values()), reverse=True)
        loads = [0.0] * max(1, args.workers)
        for seconds in jobs:
            loads[loads.index(min(loads))] += seconds
        return sum(jobs), max(loads)

    lines = [f"generation speed on {len(sample)} images x {NUM_SEVERITIES} severities, one "
             f"process (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores); "
             f"estimates for {target} images:", "",
             "| corruption | img/s (wall) | img/s (CPU time) | estimate from CPU time |",
             "| --- | ---: | ---: | ---: |"]
    lines += [f"| {c} | {1 / wall[c]:.0f} | {1 / cpu[c]:.0f} | "
              f"{_fmt_time(NUM_SEVERITIES * target * cpu[c])} |" for c in args.corruptions]
    one, parallel = estimate(cpu)
    wall_one, wall_parallel = estimate(wall)
    lines += [f"| **all** | {len(wall) / sum(wall.values()):.0f} | "
              f"{len(cpu) / sum(cpu.values()):.0f} | **{_fmt_time(one)}** |", "",
              f"Build estimate for {target} images: {_fmt_time(one)} in one process, "
              f"{_fmt_time(parallel)} on {args.workers} free cores (--workers={args.workers}); "
              f"at this run's wall speed {_fmt_time(wall_one)} / {_fmt_time(wall_parallel)}."]
    print("\n".join(lines))
    return {"images": len(sample), "target_images": target, "wall_seconds_per_image": wall,
            "cpu_seconds_per_image": cpu, "estimated_seconds": one,
            "estimated_seconds_workers": parallel}


# ----------------------------------------------------------------------------- evaluation


def _cached(model_dir: str, key: str, data: dict, corruptions: list[str]) -> dict | None:
    """The model's earlier results on the same data, if complete."""
    from noisy_student.atomic_io import read_json

    clean = read_json(os.path.join(model_dir, "clean.json"))
    corrupted = read_json(os.path.join(model_dir, "corrupted.json"))
    if not clean or not corrupted or clean.get("model_key") != key:
        return None
    if clean.get("source") != data["clean"] or corrupted.get("source") != data["corrupted"]:
        return None
    if not set(corruptions) <= set(corrupted.get("errors", {})):
        return None
    return {"clean": clean, "corrupted": corrupted,
            "timing": read_json(os.path.join(model_dir, "timing.json")) or {}}


def evaluate_model(spec: str, index: int, data: dict, args: argparse.Namespace,
                   out_dir: str, progress=print) -> dict:
    """Clean and corrupted errors of one model (reused from ``out_dir`` when there)."""
    from noisy_student.atomic_io import write_json_atomic
    from noisy_student.cli.cam import default_title, parse_model_spec
    from noisy_student.data import labels_file
    from noisy_student.evaluation import classification, loading, robustness, sources

    path, iteration = parse_model_spec(spec)
    key = f"{os.path.abspath(path)}@{iteration}"
    model_dir = os.path.join(out_dir, "models", f"{index}_{_slug(spec)}")
    cached = None if args.reevaluate else _cached(model_dir, key, data, args.corruptions)
    if cached:
        progress(f"[{index + 1}] {spec}: results in {model_dir}, reused")
    else:
        import keras

        model, info = loading.load_model(path, iteration=iteration)
        size = loading.model_image_size(model, args.image_size)
        num_classes = args.num_classes or int(model.output_shape[-1])
        common = {"image_size": size, "batch_size": args.batch_size,
                  "small_images": args.small_images}
        names = (labels_file.read_class_names(data["labels"]) if data["labels"] else None)
        progress(f"[{index + 1}] {spec}: clean ({data['num_images']} images at {size} px)")
        start = time.time()
        dataset = sources.labeled_source(data["clean"], num_classes=num_classes,
                                              label_offset=args.label_offset, **common)
        clean = classification.evaluate_classification(
            model, dataset, num_classes=num_classes, class_names=names,
            output_dir=model_dir, name="clean",
            extra={"source": data["clean"], "model_spec": spec, "model_key": key,
                   "model": info})
        middle = time.time()
        progress(f"[{index + 1}] {spec}: clean error {100 * (1 - clean['top1']):.2f}%; "
                 f"{len(args.corruptions)} corruptions x {NUM_SEVERITIES} severities")
        corrupted = robustness.evaluate_corrupted(
            model, data["corrupted"], baseline_path=None, num_classes=num_classes,
            label_offset=args.label_offset, corruptions=args.corruptions,
            clean_error=1 - clean["top1"], output_dir=model_dir, **common)
        end = time.time()
        images = data["num_images"] * (1 + NUM_SEVERITIES * len(args.corruptions))
        timing = {"clean_seconds": round(middle - start, 1),
                  "corrupted_seconds": round(end - middle, 1),
                  "images_per_second": round(images / max(end - start, 1e-9), 1)}
        write_json_atomic(os.path.join(model_dir, "timing.json"), timing)
        cached = {"clean": clean, "corrupted": corrupted, "timing": timing}
        keras.backend.clear_session()
    clean, corrupted = cached["clean"], cached["corrupted"]
    name = args.names[index] if args.names else default_title(spec, clean.get("model", {}))
    return {"name": name, "spec": spec, "model": clean.get("model"), "results": model_dir,
            "num_examples": clean["num_examples"], "clean_error": 1 - clean["top1"],
            "errors": {c: corrupted["errors"][c] for c in args.corruptions},
            "timing": cached["timing"]}


# ----------------------------------------------------------------------------- report


def compare(models: list[dict]) -> dict:
    """Each model's CE per corruption, mCE and relative mCE with the FIRST model's errors as
    the baseline (``robustness.corruption_metrics``); models: [{"name", "clean_error",
    "errors": {corruption: [error per severity]}}, ...]."""
    import numpy as np

    from noisy_student.evaluation import robustness

    if not models:
        raise ValueError("compare needs at least one model")
    names = [m["name"] for m in models]
    if len(set(names)) != len(names):
        raise ValueError(f"model names must differ, got {names}; give --names")
    base = models[0]
    rows = []
    for m in models:
        metrics = robustness.corruption_metrics(m["errors"], base["errors"],
                                                clean_error=m["clean_error"],
                                                baseline_clean_error=base["clean_error"])
        errors = np.asarray(list(m["errors"].values()))  # [corruption, severity]
        rows.append({**m, **metrics, "mean_error": float(errors.mean()),
                     "mean_error_per_severity": errors.mean(axis=0).tolist(),
                     "relative_mCE": metrics.get("relative_mCE")})
    return {"baseline": base["name"], "corruptions": list(base["errors"]), "models": rows}


def _pct(value: float | None, digits: int = 2) -> str:
    return "undefined" if value is None else f"{100 * value:.{digits}f}"


def markdown(report: dict, header: str) -> str:
    """The report as markdown: summary, per corruption, per severity, and what it says."""
    rows, base = report["models"], report["baseline"]
    lines = [f"# CIFAR-10-C: robustness relative to {base}", "", header, "",
             f"| model | clean error % | mean corruption error % | mCE ({base} = 100) | "
             "relative mCE |", "| --- | ---: | ---: | ---: | ---: |"]
    lines += [f"| {m['name']} | {_pct(m['clean_error'])} | {_pct(m['mean_error'])} | "
              f"**{_pct(m['mCE'], 1)}** | {_pct(m['relative_mCE'], 1)} |" for m in rows]
    lines += ["", "Error % per corruption (mean over the 5 severities) and CE:", "",
              "| corruption | " + " | ".join(f"{m['name']} error | {m['name']} CE"
                                             for m in rows) + " |",
              "| --- |" + " ---: | ---: |" * len(rows)]
    for c in report["corruptions"]:
        cells = [f"{_pct(sum(m['errors'][c]) / NUM_SEVERITIES)} | {_pct(m['CE'][c], 1)}"
                 for m in rows]
        lines.append(f"| {c} | " + " | ".join(cells) + " |")
    lines += ["", "Mean error % per severity (over the corruptions):", "",
              "| severity | " + " | ".join(m["name"] for m in rows) + " |",
              "| --- |" + " ---: |" * len(rows)]
    for s in range(NUM_SEVERITIES):
        lines.append(f"| {s + 1} | " + " | ".join(_pct(m["mean_error_per_severity"][s])
                                                  for m in rows) + " |")
    lines.append("")
    for m in rows[1:]:
        verdict = ("fewer" if m["mCE"] < 1 else "more" if m["mCE"] > 1 else "as many")
        better = sum(m["CE"][c] < 1 for c in report["corruptions"])
        lines.append(f"- {m['name']}: mCE {_pct(m['mCE'], 1)}, i.e. {verdict} corruption "
                     f"errors than {base}; lower CE on {better} of "
                     f"{len(report['corruptions'])} corruptions; relative mCE "
                     f"{_pct(m['relative_mCE'], 1)} (clean error {_pct(m['clean_error'])}% vs "
                     f"{_pct(rows[0]['clean_error'])}%).")
    return "\n".join(lines) + "\n"


def write_report(report: dict, data: dict, out_dir: str, pattern: str) -> dict:
    """cifar10_c.md, .json and _ce.png in ``out_dir`` (atomic writes); returns the paths."""
    from noisy_student.atomic_io import write_json_atomic, write_text_atomic
    from noisy_student.evaluation import robustness

    n, k = data["num_images"], len(report["corruptions"])
    header = (f"{n} images (the first {n} of `{pattern}`), {k} of 15 corruptions x "
              f"{NUM_SEVERITIES} severities (seed {data['build']['seed']}), generated with "
              f"noisy-student-make-corrupted into `{data['corrupted']}`; "
              f"{time.strftime('%Y-%m-%d %H:%M')}. CE and mCE: errors summed over severities "
              f"divided by {report['baseline']}'s (x100); relative mCE: the same with each "
              "model's clean error subtracted.")
    paths = {name: os.path.join(out_dir, f"{REPORT_NAME}{suffix}")
             for name, suffix in (("markdown", ".md"), ("json", ".json"), ("png", "_ce.png"))}
    text = markdown(report, header)
    robustness.plot_corruption_comparison(
        {m["name"]: m["CE"] for m in report["models"]},
        {m["name"]: m["mCE"] for m in report["models"]}, paths["png"],
        title=f"CIFAR-10-C ({n} images): CE relative to {report['baseline']}")
    write_json_atomic(paths["json"], {"benchmark": REPORT_NAME, "input": pattern,
                                      "num_images": n, "data": data, **report})
    write_text_atomic(paths["markdown"], text)
    print(text)
    return paths


def main(argv: list[str] | None = None) -> int:
    import logging

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    pattern = input_pattern(args)
    if args.measure_speed:
        measure_speed(args, pattern)
        return 0
    start = time.time()
    data = prepare_data(args, pattern)
    print(f"data: {data['num_images']} images x {len(args.corruptions)} corruptions ready in "
          f"{data['data_dir']} ({_fmt_time(time.time() - start)})")
    if not args.models:
        print("no --models: data only")
        return 0
    out_dir = os.path.abspath(args.out_dir or os.path.join(
        ROOT, "runs", "cifar10_c",
        f"results_{os.path.basename(data['data_dir'])}_vs_{_slug(args.models[0])}"))
    results = [evaluate_model(spec, k, data, args, out_dir) for k, spec in
               enumerate(args.models)]
    write_report(compare(results), data, out_dir, pattern)
    print(f"total wall time {_fmt_time(time.time() - start)}; results in {out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
