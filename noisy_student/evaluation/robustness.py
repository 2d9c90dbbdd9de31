"""Robustness benchmarks: ImageNet-C mCE (and mCE on our own corrupted record sets, with a
baseline model's errors) and ImageNet-P flip probability and top-5 distance. Clean accuracy and
the ImageNet-A/R subsets are ``noisy_student.evaluation.classification``; loading the models,
``noisy_student.evaluation.loading``.

Each benchmark function returns a JSON-ready dict and, given ``output_dir``, writes
``<name>.json`` (and PNG figures) there, each written under a temporary name and renamed.
The metric definitions and constants are in ``noisy_student.evaluation.metrics`` (Hendrycks &
Dietterich, ICLR 2019; Hendrycks et al., CVPR 2021). Errors are fractions in [0, 1].
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence

import numpy as np
import tensorflow as tf

from noisy_student.atomic_io import read_json, write_json_atomic
from noisy_student.data.tfds_source import is_tfds_spec as tfds_spec
from noisy_student.evaluation import metrics, sources
from noisy_student.evaluation.classification import confusion_and_topk
from noisy_student.evaluation.loading import model_scores
from noisy_student.plots import new_figure, write_png

log = logging.getLogger(__name__)

ALL_SEVERITIES = tuple(range(1, metrics.NUM_SEVERITIES + 1))  # the published mCE uses all


# ----------------------------------------------------------------------------- ImageNet-C


def corruption_table(errors: Mapping[str, Sequence[float]], ce: Mapping[str, float],
                     mce: float, rel: Mapping[str, float] | None = None,
                     severities: Sequence[int] = ALL_SEVERITIES,
                     partial: str | None = None) -> str:
    """Plain-text table: error (%) per severity, CE (%) and relative CE (%) per corruption;
    ``partial`` (what the mCE covers, when not everything) is printed under it."""
    header = f"{'corruption':<18}" + "".join(f"{'s' + str(s):>7}" for s in severities)
    header += f"{'CE':>8}" + (f"{'relCE':>8}" if rel else "")
    lines = [header, "-" * len(header)]
    for c, errs in errors.items():
        line = f"{c:<18}" + "".join(f"{100 * e:7.2f}" for e in errs) + f"{100 * ce[c]:8.2f}"
        if rel:
            line += f"{100 * rel[c]:8.2f}"
        lines.append(line)
    lines.append(f"{'mCE':<18}" + " " * 7 * len(severities) + f"{100 * mce:8.2f}")
    if partial:
        lines.append(f"partial mCE: {partial}")
    return "\n".join(lines)


def corruption_figure(ce: Mapping[str, float], mce: float, title: str = ""):
    """Bar chart of CE per corruption (x100) with the mCE as a line."""
    return corruption_comparison_figure({"": ce}, {"": mce}, title)


def corruption_comparison_figure(ce: Mapping[str, Mapping[str, float]],
                                 mce: Mapping[str, float], title: str = ""):
    """Grouped bar chart of CE per corruption (x100), one bar per model (``ce``: {model:
    {corruption: CE}}, all with the first model's corruptions), each model's mCE as a dashed
    line in its colour. One model named "" gives a plain single-model chart."""
    models = list(ce)
    names = list(ce[models[0]])
    width = 0.8 / len(models)
    several = len(models) > 1
    fig = new_figure(max(6, (0.25 + 0.2 * len(models)) * len(names) + (4 if several else 2)), 4)
    ax = fig.add_subplot(1, 1, 1)
    for k, model in enumerate(models):
        color = f"C{k}" if several else "tab:blue"
        offsets = np.arange(len(names)) + (k - (len(models) - 1) / 2) * width
        ax.bar(offsets, [100 * ce[model][c] for c in names], width, color=color,
               label=model or None)
        ax.axhline(100 * mce[model], color=color if several else "tab:red",
                   linestyle="--", label=f"{model + ' ' if model else ''}mCE "
                   f"{100 * mce[model]:.1f}")
    ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("corruption error (%)")
    ax.set_title(title or "corruption errors")
    if several:  # beside the axes, clear of the bars
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    else:
        ax.legend()
    return fig


def plot_corruption_errors(ce: Mapping[str, float], mce: float, path: str,
                           title: str = "") -> str:
    """`corruption_figure` as a PNG at ``path`` (atomic write); returns the path."""
    return write_png(corruption_figure(ce, mce, title), path)


def plot_corruption_comparison(ce: Mapping[str, Mapping[str, float]], mce: Mapping[str, float],
                               path: str, title: str = "") -> str:
    """`corruption_comparison_figure` as a PNG at ``path`` (atomic write); returns the path."""
    return write_png(corruption_comparison_figure(ce, mce, title), path)


def partial_scope(corruptions: Sequence[str], severities: Sequence[int]) -> str | None:
    """What an mCE over ``corruptions`` and ``severities`` leaves out of the published one (the
    15 ImageNet-C corruptions at severities 1-5), or None when it leaves out nothing."""
    parts = []
    missing = [c for c in metrics.IMAGENET_C_CORRUPTIONS if c not in corruptions]
    if missing:
        parts.append(f"{len(metrics.IMAGENET_C_CORRUPTIONS) - len(missing)} of the "
                     f"{len(metrics.IMAGENET_C_CORRUPTIONS)} ImageNet-C corruptions "
                     f"(without {', '.join(missing)})")
    if tuple(severities) != ALL_SEVERITIES:
        parts.append(f"severities {', '.join(map(str, severities))} of 1-5")
    return "; ".join(parts) or None


def corruption_metrics(errors: Mapping[str, Sequence[float]],
                       baseline: Mapping[str, float | Sequence[float]], *,
                       severities: Sequence[int] = ALL_SEVERITIES,
                       clean_error: float | None = None,
                       baseline_clean_error: float | None = None) -> dict:
    """CE per corruption and mCE given the model's errors at ``severities`` and a baseline's
    (severity-averaged error, or its errors at severities 1-5). CE_c = the model's errors
    summed over the severities / the baseline's (its average times their number when only the
    average is known); at all five it is the published CE. With both clean errors, also the
    relative CE and relative mCE. Corruptions are those of ``errors`` (all need a baseline);
    ``partial`` says what the mCE leaves out (`partial_scope`)."""
    corruptions, severities = list(errors), tuple(severities)
    missing = [c for c in corruptions if c not in baseline]
    if missing:
        raise ValueError(f"the baseline has no error for {missing}")
    lengths = {len(e) for e in errors.values()}
    if lengths != {len(severities)}:
        raise ValueError(f"need errors at severities {list(severities)}, got lengths "
                         f"{sorted(lengths)}")
    base_sum = {c: _baseline_sum(baseline[c], severities) for c in corruptions}
    zero = [c for c in corruptions if base_sum[c] == 0]
    if zero:
        raise ValueError(f"the baseline's error is 0 on {zero}, so CE (errors divided by the "
                         "baseline's) is undefined there; leave those corruptions out or use a "
                         "baseline model that errs on them")
    ce = {c: float(np.sum(errors[c]) / base_sum[c]) for c in corruptions}
    out = {"errors": {c: [float(e) for e in errors[c]] for c in corruptions},
           "CE": ce, "mCE": float(np.mean(list(ce.values()))), "severities": list(severities),
           "partial": partial_scope(corruptions, severities)}
    if clean_error is not None:
        out["clean_error"] = clean_error
    if clean_error is None or baseline_clean_error is None:
        return out
    out["baseline_clean_error"] = baseline_clean_error
    n = len(severities)
    flat = [c for c in corruptions if abs(base_sum[c] / n - baseline_clean_error) < 1e-12]
    if flat:  # relative CE divides by (baseline error - baseline clean error)
        log.warning("relative CE is undefined: the baseline's corrupted error equals its clean "
                    "error on %s", flat)
        return out
    rel = {c: float((np.sum(errors[c]) - n * clean_error) / (base_sum[c]
                                                            - n * baseline_clean_error))
           for c in corruptions}
    out.update(relative_CE=rel, relative_mCE=float(np.mean(list(rel.values()))))
    return out


def _baseline_sum(value: float | Sequence[float], severities: Sequence[int]) -> float:
    """A baseline's error summed over ``severities``: its errors there when it gives all five,
    else its severity-averaged error times their number."""
    values = np.atleast_1d(np.asarray(value, dtype=np.float64))
    if len(values) == metrics.NUM_SEVERITIES:
        return float(sum(values[s - 1] for s in severities))
    return float(len(severities) * values.mean())


def chosen_corruption_folders(root: str, chosen: Sequence[str] | None) -> list[str]:
    """The <corruption> folders of ``root`` that ``chosen`` names (None: all of them); a
    FileNotFoundError names those it lacks and those it has."""
    present = sources.subfolders(root, "<corruption>/<severity>/ folders")
    if not present:
        raise FileNotFoundError(f"{root}: no <corruption>/<severity>/ folders")
    if chosen is None:
        return present
    missing = [c for c in chosen if c not in present]
    if missing:
        raise FileNotFoundError(f"{root} has no folder for --corruptions {missing}; it has "
                                f"{', '.join(present)}")
    return list(chosen)


def present_severities(root: str, corruptions: Sequence[str]) -> tuple[int, ...]:
    """The severities (1-5) that ``root`` has for every one of ``corruptions``
    (``<root>/<corruption>/<severity>``; all five for a TFDS source). FileNotFoundError when
    they share none."""
    if tfds_spec(root):
        return ALL_SEVERITIES
    shared = set(ALL_SEVERITIES)
    for c in corruptions:
        folder = os.path.join(root, c)
        names = tf.io.gfile.listdir(folder) if tf.io.gfile.isdir(folder) else []
        shared &= {int(n.rstrip("/")) for n in names if n.rstrip("/").isdigit()}
    if not shared:
        raise FileNotFoundError(f"{root}: the corruptions {list(corruptions)} share no severity "
                                "folder 1-5 (expected <root>/<corruption>/<severity>)")
    return tuple(sorted(shared))


def corruption_errors(model, root: str, corruptions: Sequence[str], *, image_size: int,
                      num_classes: int, batch_size: int = 64, small_images: bool = False,
                      label_offset: int = 0, class_to_label: Mapping[str, int] | None = None,
                      severities: Sequence[int] = ALL_SEVERITIES,
                      max_steps: int | None = None, strict: bool = False) -> dict:
    """{corruption: [top-1 error at each severity]} over ``root`` (see
    ``sources.corrupted_source`` for the layouts)."""
    errors = {}
    scores_fn = model_scores(model, None)  # traced once for all the sets
    for c in corruptions:
        errors[c] = []
        for s in severities:
            source = sources.corrupted_source(root, c, s)
            dataset = sources.labeled_source(
                source, image_size=image_size, batch_size=batch_size, num_classes=num_classes,
                label_offset=label_offset, small_images=small_images,
                class_to_label=class_to_label, strict=strict)
            counts = confusion_and_topk(model, dataset, num_classes, max_steps=max_steps,
                                        scores_fn=scores_fn)
            error = 1.0 - counts["top1_hits"] / counts["num_examples"]
            errors[c].append(error)
            log.info("%s severity %d: error %.4f over %d images", c, s, error,
                     counts["num_examples"])
    return errors


def _write_corruption_outputs(result: dict, output_dir: str | None, name: str) -> dict:
    result["table"] = corruption_table(result["errors"], result["CE"], result["mCE"],
                                       result.get("relative_CE"), result["severities"],
                                       result["partial"])
    if output_dir:
        tf.io.gfile.makedirs(output_dir)
        partial = " (partial)" if result["partial"] else ""
        result["chart_png"] = plot_corruption_errors(
            result["CE"], result["mCE"], os.path.join(output_dir, f"{name}_ce.png"),
            title=f"{name}: mCE{partial} {100 * result['mCE']:.1f}")
        write_json_atomic(os.path.join(output_dir, f"{name}.json"), result)
    return result


def evaluate_imagenet_c(model, root: str, *, image_size: int, batch_size: int = 64,
                        small_images: bool = False,
                        corruptions: Sequence[str] = metrics.IMAGENET_C_CORRUPTIONS,
                        severities: Sequence[int] = ALL_SEVERITIES,
                        clean_error: float | None = None,
                        alexnet_clean_error: float | None = None,
                        output_dir: str | None = None, max_steps: int | None = None,
                        strict: bool = False) -> dict:
    """ImageNet-C: error per corruption and severity, CE normalized by AlexNet, mCE, and the
    relative mCE when ``clean_error`` and ``alexnet_clean_error`` are given. ``root`` is the
    released folder tree or ``tfds:imagenet2012_corrupted``. mCE is only the published metric
    over all 15 corruptions at severities 1-5; over a subset it is marked ``partial``."""
    wnids = sources.imagenet_wnids()
    errors = corruption_errors(
        model, root, corruptions, image_size=image_size, num_classes=1000,
        batch_size=batch_size, small_images=small_images,
        class_to_label={w: i for i, w in enumerate(wnids)}, severities=severities,
        max_steps=max_steps, strict=strict)
    result = corruption_metrics(errors, metrics.ALEXNET_IMAGENET_C_ERRORS,
                                severities=severities, clean_error=clean_error,
                                baseline_clean_error=alexnet_clean_error)
    result.update(benchmark="imagenet_c", source=root, baseline="AlexNet (Hendrycks & "
                  "Dietterich, ICLR 2019)")
    return _write_corruption_outputs(result, output_dir, "imagenet_c")


def read_baseline(path: str) -> tuple[dict, float | None]:
    """A baseline model's errors from JSON: ``{"errors": {corruption: error or [5 errors]},
    "clean_error": float (optional)}``, or a flat ``{corruption: ...}`` mapping. The file
    `evaluate_corrupted` writes (key "errors", per severity) is itself a valid baseline."""
    data = read_json(path)
    if data is None:
        raise FileNotFoundError(f"{path}: baseline errors file not found")
    errors = data.get("errors", data) if isinstance(data, dict) else None
    if not isinstance(errors, dict) or not errors:
        raise ValueError(f"{path}: expected {{'errors': {{corruption: error}}}}")
    clean = data.get("clean_error")
    out = {}
    for c, value in errors.items():
        values = np.atleast_1d(np.asarray(value, dtype=np.float64))
        if values.ndim != 1 or len(values) not in (1, metrics.NUM_SEVERITIES) or (
                (values < 0) | (values > 1)).any():
            raise ValueError(f"{path}: {c!r} must be an error in [0, 1] or a list of "
                             f"{metrics.NUM_SEVERITIES}, got {value!r}")
        out[c] = values.tolist()
    return out, clean


def evaluate_corrupted(model, root: str, *, baseline_path: str | None, image_size: int,
                       num_classes: int, batch_size: int = 64, small_images: bool = False,
                       label_offset: int = 1, corruptions: Sequence[str] | None = None,
                       severities: Sequence[int] | None = None,
                       clean_error: float | None = None, output_dir: str | None = None,
                       max_steps: int | None = None, strict: bool = False) -> dict:
    """mCE on our own corrupted records (``noisy-student-make-corrupted`` layout
    ``<root>/<corruption>/<severity>/*``), normalized by a baseline model's errors from
    ``baseline_path`` (AlexNet's constants only apply to ImageNet). Without a baseline only the
    errors are reported. Corruptions default to those present under ``root``, severities to
    those every chosen corruption has, so any subset the generator writes can be scored; an
    mCE over less than 15 corruptions at severities 1-5 is marked ``partial``."""
    if not tfds_spec(root):
        corruptions = chosen_corruption_folders(root, corruptions)
    severities = tuple(severities or present_severities(root, corruptions))
    errors = corruption_errors(model, root, corruptions, image_size=image_size,
                               num_classes=num_classes, batch_size=batch_size,
                               small_images=small_images, label_offset=label_offset,
                               severities=severities, max_steps=max_steps, strict=strict)
    if baseline_path:
        baseline, baseline_clean = read_baseline(baseline_path)
        result = corruption_metrics(errors, baseline, severities=severities,
                                    clean_error=clean_error, baseline_clean_error=baseline_clean)
        result["baseline"] = baseline_path
    else:
        result = {"errors": errors, "clean_error": clean_error,
                  "mean_error": float(np.mean([np.mean(e) for e in errors.values()])),
                  "severities": list(severities),
                  "partial": partial_scope(corruptions, severities)}
    result.update(benchmark="corrupted", source=root)
    if "CE" not in result:
        if output_dir:
            tf.io.gfile.makedirs(output_dir)
            write_json_atomic(os.path.join(output_dir, "corrupted.json"), result)
        return result
    return _write_corruption_outputs(result, output_dir, "corrupted")


# ----------------------------------------------------------------------------- ImageNet-P


def _comparison_pairs(num_frames: int, noise: bool, difficulty: int) -> tuple[np.ndarray,
                                                                               np.ndarray]:
    """(earlier, later) frame indices compared: noise -> (0, t); else (t - d, t)."""
    if noise:
        later = np.arange(1, num_frames)
        return np.zeros_like(later), later
    later = np.arange(difficulty, num_frames)
    return later - difficulty, later


def top5_distances(scores_a: np.ndarray, scores_b: np.ndarray) -> np.ndarray:
    """Top-5 distance between score vectors [N, C] (Hendrycks & Dietterich, ICLR 2019): with
    r_j the 0-based rank under b of the class ranked j-th under a, sum_{j<5} |j - min(r_j, 5)|.
    Ties are ranked by class index (stable sort)."""
    order_a = np.argsort(-scores_a, axis=1, kind="stable")[:, :5]
    rank_b = np.argsort(np.argsort(-scores_b, axis=1, kind="stable"), axis=1, kind="stable")
    sigma = np.take_along_axis(rank_b, order_a, axis=1)
    return np.abs(np.arange(order_a.shape[1])[None, :] - np.minimum(sigma, 5)).sum(axis=1)


def sequence_stability(scores: np.ndarray, *, noise: bool, difficulty: int = 1
                       ) -> tuple[float, float]:
    """(flip probability, mean top-5 distance) of one frame sequence's scores [T, C]."""
    preds = scores.argmax(axis=1)
    flip = metrics.flip_probability(preds[None], noise=noise, difficulty=difficulty)
    first, later = _comparison_pairs(len(scores), noise, difficulty)
    t5d = float(top5_distances(scores[first], scores[later]).mean())
    return flip, t5d


def evaluate_imagenet_p(model, root: str, *, image_size: int, small_images: bool = False,
                        perturbations: Sequence[str] = metrics.IMAGENET_P_PERTURBATIONS,
                        difficulty: int = 1, class_indices: Sequence[int] | None = None,
                        baseline_flip_probabilities: Mapping[str, float] | None = None,
                        max_videos: int | None = None, output_dir: str | None = None) -> dict:
    """ImageNet-P: flip probability (FP) and top-5 distance (T5D) per perturbation over the
    videos ``root/<perturbation>/<wnid>/*.mp4``, and their means over perturbations.

    Noise perturbations ('noise' in the name) compare every frame with the first, the others
    frames ``difficulty`` apart. The means are NOT the paper's mFR/mT5D: those divide by
    AlexNet's flip probabilities, which we did not find published (the paper reports only
    normalized rates). ``mean_flip_probability`` and ``mean_top5_distance`` are un-normalized;
    pass ``baseline_flip_probabilities`` (e.g. measured for AlexNet with this function) to get
    ``mFR`` normalized by them.
    """
    scores_fn = model_scores(model, class_indices)
    per = {}
    for p in perturbations:
        paths, _ = sources.list_videos(root, p)
        if max_videos:
            paths = paths[:max_videos]
        noise = metrics.is_noise_perturbation(p)
        flips, t5ds = [], []
        for path in paths:
            frames = sources.read_video(path)
            batch = sources.preprocess_frames(frames, image_size, small_images)
            flip, t5d = sequence_stability(scores_fn(batch).numpy(), noise=noise,
                                           difficulty=difficulty)
            flips.append(flip)
            t5ds.append(t5d)
        per[p] = {"flip_probability": float(np.mean(flips)),
                  "top5_distance": float(np.mean(t5ds)), "num_videos": len(paths)}
        log.info("%s: FP %.4f, T5D %.4f over %d videos", p, per[p]["flip_probability"],
                 per[p]["top5_distance"], len(paths))
    result = {
        "benchmark": "imagenet_p", "source": root, "difficulty": difficulty,
        "perturbations": per,
        "mean_flip_probability": float(np.mean([v["flip_probability"] for v in per.values()])),
        "mean_top5_distance": float(np.mean([v["top5_distance"] for v in per.values()])),
        "normalization": "none (AlexNet's ImageNet-P flip probabilities are not published)",
    }
    if baseline_flip_probabilities is not None:
        fr = metrics.mean_flip_rate({p: v["flip_probability"] for p, v in per.items()},
                                       baseline_flip_probabilities, perturbations=perturbations)
        result.update(FR=fr["FR"], mFR=fr["mFR"], normalization="baseline flip probabilities")
    lines = [f"{'perturbation':<16}{'FP %':>9}{'T5D':>9}{'videos':>8}"]
    lines += [f"{p:<16}{100 * v['flip_probability']:9.3f}{v['top5_distance']:9.3f}"
              f"{v['num_videos']:8d}" for p, v in per.items()]
    lines.append(f"{'mean':<16}{100 * result['mean_flip_probability']:9.3f}"
                 f"{result['mean_top5_distance']:9.3f}")
    result["table"] = "\n".join(lines)
    if output_dir:
        tf.io.gfile.makedirs(output_dir)
        write_json_atomic(os.path.join(output_dir, "imagenet_p.json"), result)
    return result
