"""Class activation maps of one or more models on the same images, as a PNG grid.

    noisy-student-cam --models=runs/cifar10@0,runs/cifar10@1 --names=teacher,student \\
        --images='sample_data/cifar10/validation-*' --small_images --num_images=8 \\
        --labels=sample_data/cifar10/labels.txt --output=cam.png
    noisy-student-cam --models=b0.keras,b3.keras --images=photos/ --method=cam

One row per image: the input, then one heat-map overlay per model captioned with the explained
class and its probability (the paper's Figure 7 compares models this way). ``--models`` takes
``.keras`` files, model directories (``teacher/``, ``iterN/student/``) and run directories
(``PATH@N`` picks iteration N: 0 = teacher; default the last). Images are preprocessed for
each model at its own input size. Logic in ``noisy_student.evaluation.cam``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

from noisy_student.cli import flag_groups  # noqa: E402
from noisy_student.cli.runner import run_tool  # noqa: E402

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
FLAGS = flags.FLAGS


def define_flags() -> None:
    """Defines the tool's flags (only when run as a program)."""
    flag_groups.define_traceback_flag()
    flags.DEFINE_list("models", None, "Models to compare, one grid column each: .keras files, "
                      "model directories or run directories; RUN_DIR@N picks iteration N "
                      "(0 = teacher, N = student N; default the last).")
    flags.DEFINE_list("names", None, "Column titles, one per model (default: derived from the "
                      "paths, e.g. 'cifar10 teacher').")
    flags.DEFINE_string("images", None, "The images: a folder of image files, a glob or comma "
                        "list of image files, or labeled data (TFRecord pattern, class-folder "
                        "tree, tfds:NAME@SPLIT); the first --num_images are used.")
    flags.DEFINE_integer("num_images", 8, "Rows of the grid (images taken in order).",
                         lower_bound=1)
    flags.DEFINE_enum("method", "gradcam", ["gradcam", "cam"], "gradcam: Grad-CAM, any layer; "
                      "cam: classifier-weighted feature maps (the layer pooled into the "
                      "classifier only).")
    flags.DEFINE_string("target", "predicted", "Class each map explains: 'predicted' (each "
                        "model's top-1), 'label' (the true label; labeled data only) or a "
                        "class index.")
    flags.DEFINE_string("layer", None, "Feature layer to explain (default top_activation).")
    flag_groups.define_image_flags()
    flag_groups.define_labels_flag("the class folders' names, else class indices.")
    flag_groups.define_ema_flag()
    flags.DEFINE_float("alpha", 0.45, "Opacity of the heat map over the image (0..1).",
                       lower_bound=0, upper_bound=1)
    flags.DEFINE_string("output", "cam.png", "PNG file to write (temp name, then renamed).")


def parse_model_spec(spec: str) -> tuple[str, int | None]:
    """'runs/x@1' -> ('runs/x', 1); 'model.keras' -> ('model.keras', None)."""
    path, sep, suffix = spec.rpartition("@")
    if sep and suffix.lstrip("-").isdigit():
        return path, int(suffix)
    return spec, None


def default_title(spec: str, info: dict) -> str:
    """A short column title from what `load_model` reports."""
    if info.get("run_dir"):
        role = "teacher" if info["iteration"] == 0 else f"student {info['iteration']}"
        return f"{os.path.basename(os.path.normpath(info['run_dir']))} {role}"
    path = os.path.normpath(parse_model_spec(spec)[0])
    if path.endswith(".keras"):
        return os.path.splitext(os.path.basename(path))[0]
    return os.path.join(os.path.basename(os.path.dirname(path)), os.path.basename(path))


def image_files(source: str) -> list[str] | None:
    """The image files ``source`` names (folder of images, glob, comma list), or None when it
    is something else (labeled data)."""
    import tensorflow as tf

    if tf.io.gfile.isdir(source):
        names = sorted(tf.io.gfile.listdir(source))
        files = [os.path.join(source, n) for n in names if n.lower().endswith(IMAGE_EXTENSIONS)]
        return files or None  # no image files: a class-folder tree
    parts = [p for p in source.split(",") if p]
    if parts and all(p.lower().endswith(IMAGE_EXTENSIONS) for p in parts):
        files = sorted(f for p in parts for f in tf.io.gfile.glob(p))
        if not files:
            raise FileNotFoundError(f"{source}: no image files match")
        return files
    return None


def load_images(source: str, *, image_size: int, num_images: int, num_classes: int,
                small_images: bool = False, label_offset: int = 1):
    """(float images [N, S, S, 3] in 0..255, int labels [N] or None) with the evaluation
    preprocessing at ``image_size``."""
    import numpy as np
    import tensorflow as tf

    from noisy_student.data.preprocessing import preprocess_for_eval
    from noisy_student.evaluation import sources

    files = image_files(source)
    if files is not None:
        images = [preprocess_for_eval(tf.io.read_file(f), image_size, small_images=small_images)
                  for f in files[:num_images]]
        return np.stack([i.numpy() for i in images]), None
    dataset = sources.labeled_source(
        source, image_size=image_size, batch_size=num_images, num_classes=num_classes,
        label_offset=label_offset, small_images=small_images)
    for images, labels in dataset.take(1):
        return images.numpy(), labels.numpy()
    raise ValueError(f"{source}: no images")


def _target(target: str, labels):
    if target == "predicted":
        return None
    if target == "label":
        if labels is None:
            raise ValueError("--target=label needs labeled data (TFRecords, class folders, "
                             "TFDS), not plain image files")
        return labels
    try:
        return int(target)
    except ValueError:
        raise ValueError(f"--target must be 'predicted', 'label' or a class index, got "
                         f"{target!r}") from None


def make_grid(models: Sequence[str], images: str, output: str, *,
              names: Sequence[str] | None = None, num_images: int = 8,
              method: str = "gradcam", target: str = "predicted", layer: str | None = None,
              small_images: bool = False, label_offset: int = 1, labels: str | None = None,
              ema: bool = True, alpha: float = 0.45,
              progress: Callable[[str], None] = lambda message: None) -> dict:
    """Computes the maps of every model and writes the grid; returns what it wrote."""
    import keras

    from noisy_student.data import labels_file
    from noisy_student.evaluation import cam, loading, sources

    if not models:
        raise ValueError("give at least one model (--models)")
    if names is not None and len(names) != len(models):
        raise ValueError(f"{len(names)} --names for {len(models)} --models")
    class_names = labels_file.read_class_names(labels) if labels else None
    if class_names is None and sources.is_class_folder(images) and not image_files(images):
        class_names = sources.list_class_folders(images)[2]
    columns, first_labels = [], None
    for index, spec in enumerate(models):
        path, iteration = parse_model_spec(spec)
        progress(f"[{index + 1}/{len(models)}] {spec}: loading")
        model, info = loading.load_model(path, iteration=iteration, ema=ema)
        size = loading.model_image_size(model)
        pixels, label_values = load_images(
            images, image_size=size, num_images=num_images,
            num_classes=int(model.output_shape[-1]), small_images=small_images,
            label_offset=label_offset)
        progress(f"[{index + 1}/{len(models)}] {spec}: {method} on {len(pixels)} images "
                 f"at {size}x{size}")
        result = cam.class_activation_maps(model, pixels, method=method, layer_name=layer,
                                           classes=_target(target, label_values))
        title = names[index] if names else default_title(spec, info)
        columns.append(cam.CamColumn(title, pixels, result))
        first_labels = label_values if first_labels is None else first_labels
        keras.backend.clear_session()
    if class_names is not None and len(class_names) < columns[0].result.probabilities.shape[1]:
        raise ValueError(f"{labels}: {len(class_names)} class names for "
                         f"{columns[0].result.probabilities.shape[1]} classes")
    cam.write_cam_grid(output, columns, class_names=class_names, labels=first_labels,
                       alpha=alpha)
    progress(f"wrote {output}")
    return {"output": output, "rows": len(columns[0].images),
            "columns": [c.title for c in columns]}


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments {argv[1:]}")
    if not FLAGS.models or not FLAGS.images:
        raise app.UsageError("--models and --images are required")
    flag_groups.call_with_flags(
        make_grid, progress=lambda m: print(m, file=sys.stderr, flush=True))

def run() -> None:
    """Console-script entry point."""
    run_tool(__name__, define_flags, main, "noisy-student-cam")


if __name__ == "__main__":
    run()
