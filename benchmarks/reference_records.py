"""Reference vs copy pseudo-label records on the bundled sample: same pseudo labels, same student?

Issue #30's last acceptance item: students trained from reference records
(``--pseudo_label_storage=reference``: the record names its unlabeled image by file and index and
keeps the top ``--pseudo_label_topk`` classes plus the remaining mass) score as students trained
from copy records (``--pseudo_label_storage=float16``: the image bytes and the float16
distribution), at 32 px and 224 px.

Per seed, one teacher (``--mode=teacher --seed=N --deterministic``, then its evaluation), and two
students from it that differ only in ``--pseudo_label_storage`` (each in its own run dir that
hard-links the teacher, `cifar10_ablations.seed_run_dir`): label, filter, student and eval of
iteration 1. Per seed it records both students' top-1, the agreement of the two label sets
(argmax and confidence per unlabeled image, matched by source file and record index, with the
copy record's image checked against the source image the reference names), the filtered sets
(kept images and their multiset of images), bytes per pseudo-label record, and the students'
training seconds; over seeds, the paired difference reference - copy with a 95% t-interval.

    out_dir/<setting>/seed<N>/teacher/      the seed's teacher
    out_dir/<setting>/seed<N>/<arm>/        a student's run dir (arm: copy or reference)
    out_dir/<setting>/records/seed<N>.json  a finished seed (the durable result)

Everything resumes: finished seeds are skipped, finished stages are not relaunched, and the
loop resumes a killed stage from its checkpoint. Every run rewrites the results from the seed
records that exist (``--summarize`` only does that), so partial results are summarized too.

    python benchmarks/reference_records.py --settings=32px --seeds=1,2,3
    python benchmarks/reference_records.py --settings=224px --seeds=1,2,3
    python benchmarks/reference_records.py --summarize
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import datetime
import glob
import hashlib
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cifar10_ablations import manifest, seed_run_dir, teacher_stages  # noqa: E402
from paired_stats import mean_sd, paired_difference  # noqa: E402
from provenance import commit  # noqa: E402
from self_training_cifar10 import (  # noqa: E402
    ROOT,
    check_passthrough,
    choice_list,
    run_loop,
)

sys.path.insert(0, ROOT)
from noisy_student.atomic_io import read_json, write_json_atomic  # noqa: E402
from noisy_student.run import layout  # noqa: E402

FLAGFILE = os.path.join(ROOT, "noisy_student", "assets", "configs", "demo.cfg")
OUT_DIR = os.path.join(ROOT, "runs", "reference_records")
RESULTS = os.path.join(ROOT, "benchmarks", "results", "reference_records.json")
UNLABELED = "sample_data/cifar10/unlabeled-*"
NUM_CLASSES = 10


@dataclasses.dataclass(frozen=True)
class Setting:
    """The loop's flags on top of demo.cfg, and what they change."""

    flags: tuple[str, ...]
    description: str
    unlabel_data: str = UNLABELED


# 224 px: the standard (not --small_images) half-width, half-depth B0 on the sample's 32 px
# images resized to 224 (4.1x the multiply-adds of the 32 px small-image variant,
# efficientnet_tf.complexity; a 224 px step of 64 images took several seconds on this
# machine's loaded cores), reduced to ~15 min a seed (teacher + 2 students) on one core:
# batches of 32 labeled images (students: + 32 pseudo-labeled) instead of 64, the teacher 2
# epochs (62 steps) instead of 40 with 0.5 warm-up epochs instead of 2, students half the
# teacher's steps (--student_train_ratio=0.5) instead of as many, 1,125 unlabeled images
# (shard 0 of 8) instead of 9,000, 1,000 test images (validation shard 0 of 2) instead of
# 2,000, and --min_threshold=0 instead of 0.3 (the 2-epoch teacher is near chance: with 0.2
# no image was kept and the filter stopped; balancing still keeps the most confident 112 per
# class).
UNLABELED_224 = "sample_data/cifar10/unlabeled-00000-of-00008"
SETTINGS: dict[str, Setting] = {
    "32px": Setting((), "configs/demo.cfg as is: 1,000 labeled + 9,000 unlabeled 32x32 images, "
                        "the small-image half-width half-depth B0, teacher 40 epochs (625 "
                        "steps of 64), students as many steps (64 labeled + 64 pseudo-labeled), "
                        "2,000 test images"),
    "224px": Setting(
        ("--nosmall_images", "--image_size=224", "--train_batch_size=32", "--train_epochs=2",
         "--lr_warmup_epochs=0.5", "--student_train_ratio=0.5", "--min_threshold=0",
         "--checkpoint_every=50", f"--unlabel_data={UNLABELED_224}",
         "--eval_data=sample_data/cifar10/validation-00000-of-00002"),
        "configs/demo.cfg at 224 px (--nosmall_images --image_size=224: the standard half-width "
        "half-depth B0 on the 32 px images resized), reduced for time on this machine: batches "
        "of 32 labeled images instead of 64, teacher 2 epochs (62 steps) instead of 40 with "
        "0.5 warm-up epochs instead of 2, students half the teacher's steps (31 steps of 32 "
        "labeled + 32 pseudo-labeled), 1,125 unlabeled images (shard 0 of 8) instead of 9,000, "
        "--min_threshold=0 instead of 0.3 (with 0.2 the near-chance teacher's labels kept "
        "nothing), 1,000 test images (validation shard 0 of 2) "
        "instead of 2,000; the same 1,000 labeled images",
        unlabel_data=UNLABELED_224),
}
ARMS = {"copy": "--pseudo_label_storage=float16", "reference": "--pseudo_label_storage=reference"}
TEACHER_COMMANDS = (("--mode=teacher",), ("--mode=eval", "--iteration=0"))
STUDENT_COMMANDS = tuple((f"--mode={mode}", "--iteration=1")
                         for mode in ("label", "filter", "student", "eval"))


# ----------------------------------------------------------------------------- arguments
def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--settings", default="32px",
                        help=f"Comma-separated settings of {sorted(SETTINGS)}.")
    parser.add_argument("--seeds", default="1,2,3", help="Comma-separated seeds.")
    parser.add_argument("--flagfile", default=FLAGFILE)
    parser.add_argument("--out_dir", default=OUT_DIR)
    parser.add_argument("--results", default=RESULTS, help="Results JSON (the .md beside it).")
    parser.add_argument("--summarize", action="store_true",
                        help="Only rewrite the results from the finished seeds.")
    parser.add_argument("--deadline", default=None,
                        help="Start no seed after this time (HH:MM, local): a seed started "
                             "is finished, so a session can stop with whole seeds.")
    args, passthrough = parser.parse_known_args(argv)
    check_passthrough(parser, passthrough)
    args.settings = choice_list(parser, "--settings", args.settings, SETTINGS)
    try:
        args.seeds = [int(s) for s in args.seeds.split(",") if s]
    except ValueError:
        parser.error(f"--seeds must be comma-separated integers, got {args.seeds!r}")
    if not args.seeds:
        parser.error("no seeds")
    return args, passthrough


# ----------------------------------------------------------------------------- running
def run_dir(out_dir: str, setting: str, seed: int, arm: str = "teacher") -> str:
    return os.path.join(out_dir, setting, f"seed{seed}", arm)


def record_path(out_dir: str, setting: str, seed: int) -> str:
    return os.path.join(out_dir, setting, "records", f"seed{seed}.json")


def stage_of(command: tuple[str, ...]) -> str:
    """The manifest name of the stage a --mode/--iteration command runs."""
    mode = command[0].split("=", 1)[1]
    iteration = int(command[1].split("=", 1)[1]) if len(command) > 1 else 0
    return layout.stage_for_mode(mode, iteration).name


def loop_flags(setting: str, seed: int, directory: str, arm: str | None,
               passthrough: list[str]) -> list[str]:
    flags = [f"--run_dir={directory}", f"--seed={seed}", "--deterministic", "--quiet",
             *SETTINGS[setting].flags]
    if arm:
        flags.append(ARMS[arm])
    return [*flags, *passthrough]


def run_stages(flagfile: str, directory: str, flags: list[str],
               commands: tuple[tuple[str, ...], ...]) -> int:
    """Runs the commands whose stage the run dir's manifest lacks."""
    for command in commands:
        path = os.path.join(directory, layout.MANIFEST)
        if os.path.exists(path) and stage_of(command) in manifest(directory)["stages"]:
            continue
        code = run_loop(flagfile, [*flags, *command])
        if code:
            return code
    return 0


def run_seed(args: argparse.Namespace, setting: str, seed: int) -> int:
    teacher = run_dir(args.out_dir, setting, seed)
    start = time.time()
    code = run_stages(args.flagfile, teacher,
                      loop_flags(setting, seed, teacher, None, args.passthrough),
                      TEACHER_COMMANDS)
    if code:
        return code
    commands = {"teacher": [" ".join(loop_flags(setting, seed, "<teacher>", None, []) + list(c))
                            for c in TEACHER_COMMANDS]}
    for arm in ARMS:
        directory = run_dir(args.out_dir, setting, seed, arm)
        seed_run_dir(directory, teacher_stages(teacher))
        code = run_stages(args.flagfile, directory,
                          loop_flags(setting, seed, directory, arm, args.passthrough),
                          STUDENT_COMMANDS)
        if code:
            return code
        commands[arm] = [" ".join(loop_flags(setting, seed, f"<{arm}>", arm, []) + list(c))
                         for c in STUDENT_COMMANDS]
    record = seed_record(args.out_dir, setting, seed)
    record.update({
        "seed_seconds": round(time.time() - start),  # of this invocation (less when resumed)
        "commit": commit(),
        "date": datetime.datetime.now().isoformat(timespec="minutes"),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "command": {name: [f"noisy-student --flagfile={os.path.relpath(args.flagfile, ROOT)} "
                           f"{line}" for line in lines] for name, lines in commands.items()},
        "passthrough": args.passthrough,
    })
    os.makedirs(os.path.dirname(record_path(args.out_dir, setting, seed)), exist_ok=True)
    write_json_atomic(record_path(args.out_dir, setting, seed), record)
    print(f"{setting} seed {seed}: teacher {record['teacher_top1']}, copy "
          f"{record['students']['copy']['top1']}, reference "
          f"{record['students']['reference']['top1']}, argmax agreement "
          f"{record['agreement']['argmax_agreement']}", flush=True)
    return 0


# ----------------------------------------------------------------------------- measuring
def _digest(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


def source_images(pattern: str) -> dict[tuple[str, int], str]:
    """{(file basename, record index): digest of the image bytes} of the unlabeled files."""
    import tensorflow as tf

    from noisy_student.assets import resolve
    from noisy_student.data.records import parse_unlabeled

    images = {}
    for path in sorted(tf.io.gfile.glob(resolve(pattern))):
        dataset = tf.data.TFRecordDataset(path).map(lambda r: parse_unlabeled(r)["image"])
        for index, image in enumerate(dataset.as_numpy_iterator()):
            images[(os.path.basename(path), index)] = _digest(image)
    return images


def read_records(files: list[str], reference: bool) -> list[dict]:
    """Every pseudo-label record of `files` in order, parsed by the package's own parser of
    its storage: {label, prob, probabilities, bytes, copies, and image digest or (source,
    index)}."""
    import tensorflow as tf

    from noisy_student.data.records import parse_pseudo_labeled
    from noisy_student.data.reference_records import parse_reference

    def parse(serialized):
        parsed = (parse_reference(serialized, NUM_CLASSES) if reference
                  else parse_pseudo_labeled(serialized, NUM_CLASSES))
        parsed["bytes"] = tf.strings.length(serialized)
        return parsed

    rows = []
    for path in files:
        for parsed in tf.data.TFRecordDataset(path).map(parse).as_numpy_iterator():
            row = {"label": int(parsed["label"]), "prob": float(parsed["prob"]),
                   "probabilities": parsed["probabilities"], "bytes": int(parsed["bytes"]),
                   "file": os.path.basename(path)}
            if reference:
                row.update(source=parsed["source"].decode(), index=int(parsed["index"]),
                           copies=int(parsed["copies"]))
            else:
                row.update(image=_digest(parsed["image"]), copies=1)
            rows.append(row)
    return rows


def label_files(directory: str) -> list[str]:
    from noisy_student.pseudo_labels.labeling import pseudo_label_pattern

    return sorted(glob.glob(pseudo_label_pattern(os.path.join(directory, layout.labels_dir(1)))))


def filtered_files(directory: str) -> tuple[list[str], dict]:
    from noisy_student.pseudo_labels.filtering import STATS_NAME

    folder = os.path.join(directory, layout.filtered_dir(1))
    stats = read_json(os.path.join(folder, STATS_NAME))
    return [os.path.join(folder, name) for name in stats["output_files"]], stats


def agreement(copy_rows: list[dict], reference_rows: list[dict],
              images: dict[tuple[str, int], str] | None = None) -> dict:
    """The two label sets of one teacher compared image by image. Both are written one shard
    per unlabeled shard in source order, so row i of each is the same image; a reference row
    names it (source, index), and with `images` the copy row's image must be that image."""
    if len(copy_rows) != len(reference_rows):
        raise ValueError(f"{len(copy_rows)} copy records against {len(reference_rows)} "
                         "reference records")
    if not copy_rows:
        raise ValueError("no pseudo-label records")
    mismatched = 0
    if images is not None:
        mismatched = sum(images.get((r["source"], r["index"])) != c["image"]
                         for c, r in zip(copy_rows, reference_rows, strict=True))
    copy_labels = np.array([r["label"] for r in copy_rows])
    reference_labels = np.array([r["label"] for r in reference_rows])
    copy_probs = np.array([r["prob"] for r in copy_rows])
    reference_probs = np.array([r["prob"] for r in reference_rows])
    copy_dense = np.stack([r["probabilities"] for r in copy_rows])
    reference_dense = np.stack([r["probabilities"] for r in reference_rows])
    return {
        "images": len(copy_rows),
        "image_mismatches": mismatched,
        "argmax_agreement": float(np.mean(copy_labels == reference_labels)),
        "dense_argmax_agreement": float(np.mean(copy_dense.argmax(1) ==
                                                reference_dense.argmax(1))),
        "max_confidence_difference": float(np.max(np.abs(copy_probs - reference_probs))),
        "max_distribution_difference": float(np.max(np.abs(copy_dense - reference_dense))),
        "mean_distribution_l1": float(np.mean(np.abs(copy_dense - reference_dense).sum(1))),
    }


def kept_multiset(rows: list[dict], images: dict[tuple[str, int], str] | None = None
                  ) -> collections.Counter:
    """The filtered set as a multiset of image digests (a reference row counts `copies`
    times, its image looked up in `images`)."""
    counter: collections.Counter = collections.Counter()
    for row in rows:
        counter[row["image"] if "image" in row else images[(row["source"], row["index"])]] += \
            row["copies"]
    return counter


def bytes_per_record(rows: list[dict], files: list[str]) -> dict:
    return {"record": float(np.mean([r["bytes"] for r in rows])),
            "file": sum(os.path.getsize(f) for f in files) / len(rows)}


def seed_record(out_dir: str, setting: str, seed: int) -> dict:
    """The figures of a finished seed, read from its run dirs."""
    teacher = manifest(run_dir(out_dir, setting, seed))["stages"]
    images = source_images(SETTINGS[setting].unlabel_data)
    labels, filtered, students = {}, {}, {}
    for arm in ARMS:
        directory = run_dir(out_dir, setting, seed, arm)
        stages = manifest(directory)["stages"]
        files = label_files(directory)
        labels[arm] = read_records(files, arm == "reference")
        kept_files, stats = filtered_files(directory)
        filtered[arm] = read_records(kept_files, arm == "reference")
        student = stages[layout.stage_name(layout.TRAIN, 1)]
        students[arm] = {
            "top1": stages[layout.stage_name(layout.EVAL, 1)]["top1"],
            "train_seconds": student.get("train_seconds"),
            "steps": student.get("steps"),
            "label_seconds": stages[layout.stage_name(layout.LABEL, 1)].get("seconds"),
            "filter_seconds": stages[layout.stage_name(layout.FILTER, 1)].get("seconds"),
            "bytes_per_label_record": bytes_per_record(labels[arm], files),
            "bytes_per_filtered_record": bytes_per_record(filtered[arm], kept_files),
            "filtered_records": len(filtered[arm]),
            "num_kept": stats["num_kept"],
            "num_written": stats["num_written"],
            "kept_per_class": stats["kept_per_class"],
            "student_images": sum(r["copies"] for r in filtered[arm]),
        }
    compared = agreement(labels["copy"], labels["reference"], images)
    compared["kept_multiset_equal"] = (kept_multiset(filtered["copy"]) ==
                                       kept_multiset(filtered["reference"], images))
    compared["kept_per_class_equal"] = (students["copy"]["kept_per_class"] ==
                                        students["reference"]["kept_per_class"])
    return {"setting": setting, "seed": seed,
            "teacher_top1": teacher[layout.stage_name(layout.EVAL, 0)]["top1"],
            "teacher_train_seconds": teacher[layout.stage_name(layout.TRAIN, 0)]
            .get("train_seconds"),
            "students": students, "agreement": compared}


# ----------------------------------------------------------------------------- summary
def summarize(records: list[dict]) -> dict:
    """Per arm mean +- sd of top-1 (percent), and the paired difference reference - copy."""
    if not records:
        return {"seeds": [], "n": 0}
    top1 = {arm: {r["seed"]: 100 * r["students"][arm]["top1"] for r in records} for arm in ARMS}
    teacher = [100 * r["teacher_top1"] for r in records]

    def stats(values: list[float]) -> dict:
        mean, sd = mean_sd(values)
        return {"mean": mean, "sd": sd}

    return {
        "seeds": sorted(r["seed"] for r in records),
        "n": len(records),
        "teacher_top1": stats(teacher),
        "student_top1": {arm: stats(list(top1[arm].values())) for arm in ARMS},
        "reference_minus_copy": paired_difference(top1["reference"], top1["copy"]),
        "argmax_agreement_min": min(r["agreement"]["argmax_agreement"] for r in records),
        "max_confidence_difference": max(r["agreement"]["max_confidence_difference"]
                                         for r in records),
        "kept_multiset_equal_all": all(r["agreement"]["kept_multiset_equal"] for r in records),
        "bytes_per_label_record": {arm: stats([r["students"][arm]["bytes_per_label_record"]
                                               ["record"] for r in records]) for arm in ARMS},
        "student_train_seconds": {arm: stats([r["students"][arm]["train_seconds"] or 0.0
                                              for r in records]) for arm in ARMS},
    }


def _pct(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def markdown(results: dict) -> str:
    lines = ["# Reference vs copy pseudo-label records on the bundled sample (issue #30)", "",
             "Per seed one teacher and two students from it that differ only in "
             "`--pseudo_label_storage` (`float16` copy records vs `reference` records, top-5 + "
             "rest), all `--deterministic --seed=N`. Agreement: the two label sets compared per "
             "unlabeled image (argmax, stored confidence); kept: images after filtering and "
             "balancing (copies counted), and whether the two filtered sets are the same "
             "multiset of images. Bytes: mean serialized pseudo-label record. Made by "
             "`benchmarks/reference_records.py`; figures in "
             "[reference_records.json](reference_records.json). Student train seconds are wall "
             "time on a shared 2-core machine (load 3-6: other jobs, and up to two of these "
             "seeds at a time), so they are no speed comparison of the two storages. A setting "
             "lists the seeds that finished.", ""]
    for setting, entry in results["settings"].items():
        summary = entry["summary"]
        lines += [f"## {setting}", "", entry["description"] + ".", ""]
        if not entry["seeds"]:
            lines += ["No seed finished.", ""]
            continue
        lines += ["| seed | teacher | copy student | reference student | ref - copy | "
                  "argmax agreement | max conf. diff | kept (copy / ref) | same kept set | "
                  "bytes/record (copy / ref) | student train s (copy / ref) |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for r in entry["seeds"]:
            c, f = r["students"]["copy"], r["students"]["reference"]
            a = r["agreement"]
            lines.append(
                f"| {r['seed']} | {100 * r['teacher_top1']:.2f}% | {100 * c['top1']:.2f}% | "
                f"{100 * f['top1']:.2f}% | {100 * (f['top1'] - c['top1']):+.2f} | "
                f"{a['argmax_agreement']:.4f} ({a['images']:,}) | "
                f"{a['max_confidence_difference']:.2g} | {c['student_images']:,} / "
                f"{f['student_images']:,} | {'yes' if a['kept_multiset_equal'] else 'NO'} | "
                f"{c['bytes_per_label_record']['record']:.0f} / "
                f"{f['bytes_per_label_record']['record']:.0f} | "
                f"{_pct(c['train_seconds'], 0)} / {_pct(f['train_seconds'], 0)} |")
        d = summary["reference_minus_copy"]
        arms = summary["student_top1"]

        def spread(stats: dict) -> str:
            return f"{stats['mean']:.2f}%" + (f" +- {stats['sd']:.2f}" if stats["sd"] is not None
                                               else "")

        largest = max(r["agreement"]["max_distribution_difference"] for r in entry["seeds"])
        l1 = max(r["agreement"]["mean_distribution_l1"] for r in entry["seeds"])
        lines += ["", f"Over {summary['n']} seed(s): teacher {spread(summary['teacher_top1'])}, "
                  f"copy student {spread(arms['copy'])}, reference student "
                  f"{spread(arms['reference'])} (mean +- sd). Paired reference - copy: "
                  f"**{d['mean']:+.2f} points**"
                  + (f", 95% t-interval [{d['low']:+.2f}, {d['high']:+.2f}]"
                     f" ({'excludes' if d['excludes_zero'] else 'includes'} 0)"
                     if d["low"] is not None else " (one seed: no interval)") + ". "
                  "The students' inputs differ only in the soft targets: reference records keep "
                  "the top 5 of 10 classes (float16) and spread the rest evenly, copy records "
                  "the float16 distribution (largest per-class difference over the seeds: "
                  f"{largest:.3f}; mean L1 per image, largest seed: {l1:.3f}).",
                  ""]
        first = entry["seeds"][0]
        lines += [f"Run {first['date']} at commit {first['commit']}; load average at the end "
                  f"of each seed: "
                  + ", ".join(f"{r['seed']}: {r['load_average'][0]}" for r in entry["seeds"])
                  + ". Command of seed " + str(first["seed"]) + ":", "", "```"]
        lines += [f"{name}: {line}" for name in ("teacher", *ARMS)
                  for line in first["command"][name]]
        lines += ["```", ""]
    return "\n".join(lines)


def write_results(out_dir: str, results_path: str) -> dict:
    """The results of every setting's finished seeds (partial or not), JSON and markdown."""
    results = {"benchmark": "reference_records", "issue": 30,
               "flagfile": os.path.relpath(FLAGFILE, ROOT), "settings": {}}
    for setting, spec in SETTINGS.items():
        records = [read_json(path) for path in sorted(
            glob.glob(os.path.join(out_dir, setting, "records", "seed*.json")))]
        records = sorted([r for r in records if r], key=lambda r: r["seed"])
        results["settings"][setting] = {"description": spec.description,
                                        "flags": list(spec.flags),
                                        "summary": summarize(records), "seeds": records}
    write_json_atomic(results_path, results)
    with open(os.path.splitext(results_path)[0] + ".md.tmp", "w") as f:
        f.write(markdown(results))
    os.replace(os.path.splitext(results_path)[0] + ".md.tmp",
               os.path.splitext(results_path)[0] + ".md")
    return results


def past_deadline(deadline: str | None, now: datetime.datetime | None = None) -> bool:
    if not deadline:
        return False
    now = now or datetime.datetime.now()
    hour, minute = (int(x) for x in deadline.split(":"))
    return (now.hour, now.minute) >= (hour, minute)


def main(argv: list[str] | None = None) -> int:
    args, passthrough = parse_args(argv)
    args.passthrough = passthrough
    args.out_dir = os.path.abspath(args.out_dir)
    if args.summarize:
        write_results(args.out_dir, args.results)
        return 0
    code = 0
    for setting in args.settings:
        for seed in args.seeds:
            if os.path.exists(record_path(args.out_dir, setting, seed)):
                continue
            if past_deadline(args.deadline):
                print(f"past {args.deadline}: not starting {setting} seed {seed}", flush=True)
                break
            code = run_seed(args, setting, seed)
            write_results(args.out_dir, args.results)
            if code:
                print(f"{setting} seed {seed}: the loop exited with {code}; stopping",
                      flush=True)
                return code
    write_results(args.out_dir, args.results)
    return code


if __name__ == "__main__":
    sys.exit(main())
