"""Labeled evaluation data: TFRecords, image folders, TFDS, and the robustness benchmarks' layouts.

Every reader yields batches of (float images [B, S, S, 3] in 0..255, int32 labels [B]) through
the project's eval preprocessing (center crop + bicubic resize, or the small-image variant).

* ``tfds:NAME@SPLIT``: TFDS (labels 0-based), via ``noisy_student.data.tfds_source``.
* A directory with class subfolders ``<class>/*.jpg|jpeg|png``: an image folder tree. Labels are
  the sorted folder index, or come from ``class_to_label`` (e.g. WordNet id -> ImageNet index).
* Anything else: a TFRecord file pattern in the ImageNet layout (``label_offset`` 1 for 1-based
  files), via ``noisy_student.data.pipelines``.

Benchmark layouts (as released by their authors):

* ImageNet-A / ImageNet-R: ``<root>/<wnid>/*.jpg`` with 200 WordNet-id folders; TFDS
  ``imagenet_a`` / ``imagenet_r`` (1000-class labels). Labels are mapped to the position of the
  class in the 200-class subset (the model's scores are restricted to those 200 columns).
* ImageNet-C: ``<root>/<corruption>/<severity 1-5>/<wnid>/*.JPEG``; TFDS
  ``imagenet2012_corrupted/<corruption>_<severity>``; our generated TFRecords
  ``<root>/<corruption>/<severity>/*`` (see ``noisy_student.evaluation.corruptions``).
* ImageNet-P: ``<root>/<perturbation>/<wnid>/*.mp4`` frame sequences.

Undecodable images are skipped and counted with a warning naming the file, or raise an error
naming the file with ``strict=True``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from importlib import resources

import numpy as np
import tensorflow as tf

from noisy_student.data import pipelines, tfds_source
from noisy_student.data.bad_data import DataStats, guarded_map
from noisy_student.data.preprocessing import preprocess_for_eval
from noisy_student.evaluation.metrics import IMAGENET_A_INDICES

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
VIDEO_EXTENSIONS = (".mp4",)

# ImageNet-R: indices (in the 1000-class ImageNet order) of its 200 classes, ascending; ImageNet-R
# label i is the i-th of them (hendrycks/imagenet-r, eval.py, `imagenet_r_mask`).
IMAGENET_R_INDICES = (
    1, 2, 4, 6, 8, 9, 11, 13, 22, 23, 26, 29, 31, 39, 47, 63, 71, 76, 79, 84, 90, 94, 96, 97, 99,
    100, 105, 107, 113, 122, 125, 130, 132, 144, 145, 147, 148, 150, 151, 155, 160, 161, 162, 163,
    171, 172, 178, 187, 195, 199, 203, 207, 208, 219, 231, 232, 234, 235, 242, 245, 247, 250, 251,
    254, 259, 260, 263, 265, 267, 269, 276, 277, 281, 288, 289, 291, 292, 293, 296, 299, 301, 308,
    309, 310, 311, 314, 315, 319, 323, 327, 330, 334, 335, 337, 338, 340, 341, 344, 347, 353, 355,
    361, 362, 365, 366, 367, 368, 372, 388, 390, 393, 397, 401, 407, 413, 414, 425, 428, 430, 435,
    437, 441, 447, 448, 457, 462, 463, 469, 470, 471, 472, 476, 483, 487, 515, 546, 555, 558, 570,
    579, 583, 587, 593, 594, 596, 609, 613, 617, 621, 629, 637, 657, 658, 701, 717, 724, 763, 768,
    774, 776, 779, 780, 787, 805, 812, 815, 820, 824, 833, 847, 852, 866, 875, 883, 889, 895, 907,
    928, 931, 932, 933, 934, 936, 937, 943, 945, 947, 948, 949, 951, 953, 954, 957, 963, 965, 967,
    980, 981, 983, 988,
)
SUBSET_INDICES = {"imagenet_a": IMAGENET_A_INDICES, "imagenet_r": IMAGENET_R_INDICES}
TFDS_NAMES = {"imagenet_a": "imagenet_a@test", "imagenet_r": "imagenet_r@test"}


# ----------------------------------------------------------------------------- class lists


def imagenet_wnids() -> list[str]:
    """The 1000 ImageNet WordNet ids in class-index order (package data imagenet_classes.txt)."""
    text = resources.files("noisy_student.data").joinpath("imagenet_classes.txt").read_text()
    wnids = text.split()
    if len(wnids) != 1000:
        raise RuntimeError(f"imagenet_classes.txt holds {len(wnids)} ids, expected 1000")
    return wnids


def subset_label_map(benchmark: str) -> dict[str, int]:
    """WordNet id -> label in the 200-class subset of ImageNet-A or ImageNet-R."""
    wnids = imagenet_wnids()
    return {wnids[index]: position for position, index in enumerate(SUBSET_INDICES[benchmark])}


# ----------------------------------------------------------------------------- image folders


def _images_in(directory: str, extensions: Sequence[str]) -> list[str]:
    return sorted(os.path.join(directory, name) for name in tf.io.gfile.listdir(directory)
                  if name.lower().endswith(tuple(extensions)))


def subfolders(root: str, expected: str) -> list[str]:
    """The sorted names of the folders in ``root``; a FileNotFoundError when ``root`` is not a
    directory (``expected`` says of what)."""
    if not tf.io.gfile.isdir(root):
        raise FileNotFoundError(f"{root}: not a directory of {expected}")
    return sorted(name.rstrip("/") for name in tf.io.gfile.listdir(root)
                  if tf.io.gfile.isdir(os.path.join(root, name)))


def list_class_folders(root: str, class_to_label: Mapping[str, int] | None = None,
                       extensions: Sequence[str] = IMAGE_EXTENSIONS
                       ) -> tuple[list[str], list[int], list[str]]:
    """(file paths, labels, class names) of ``root/<class>/*``.

    Without ``class_to_label`` the labels are the sorted folder indices; with it, every folder
    name must be a key (else ValueError naming the folder).
    """
    classes = subfolders(root, "class folders")
    if not classes:
        raise ValueError(f"{root}: no class subfolders (expected <class>/<image files>)")
    paths, labels = [], []
    for position, name in enumerate(classes):
        if class_to_label is None:
            label = position
        elif name in class_to_label:
            label = class_to_label[name]
        else:
            raise ValueError(f"{os.path.join(root, name)}: folder {name!r} is not a known class "
                             f"(expected one of the {len(class_to_label)} class ids, e.g. "
                             f"{next(iter(class_to_label))!r})")
        files = _images_in(os.path.join(root, name), extensions)
        paths += files
        labels += [label] * len(files)
    if not paths:
        raise ValueError(f"{root}: the class folders hold no {'/'.join(extensions)} files")
    return paths, labels, classes


def is_class_folder(source) -> bool:
    return isinstance(source, str) and not tfds_source.is_tfds_spec(source) and (
        tf.io.gfile.isdir(source))


def image_folder_dataset(root: str, *, image_size: int, batch_size: int,
                         small_images: bool = False,
                         class_to_label: Mapping[str, int] | None = None, strict: bool = False,
                         stats: DataStats | None = None) -> tf.data.Dataset:
    """Batches of (images, int32 labels) from ``root/<class>/*.jpg|jpeg|png`` (file order)."""
    paths, labels, _ = list_class_folders(root, class_to_label)
    dataset = tf.data.Dataset.from_tensor_slices(
        {"file": paths, "label": np.asarray(labels, np.int32),
         "index": np.zeros(len(paths), np.int64)})
    dataset = dataset.map(lambda e: {**e, "image": tf.io.read_file(e["file"])})

    def preprocess(element):
        image = preprocess_for_eval(element["image"], image_size, small_images=small_images)
        return image, element["label"]

    dataset = guarded_map(dataset, preprocess, stats=stats or DataStats(), strict=strict,
                          deterministic=True)
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)


# ----------------------------------------------------------------------------- generic source


def labeled_source(source: str, *, image_size: int, batch_size: int, num_classes: int,
                   label_offset: int = 0, small_images: bool = False,
                   class_to_label: Mapping[str, int] | None = None, strict: bool = False,
                   label_map: Sequence[int] | None = None) -> tf.data.Dataset:
    """Batches of (images, int32 labels) from a TFDS spec, a class-folder tree or TFRecords.

    ``label_map`` (length = the source's number of classes) relabels after reading, e.g. the
    1000-class labels of TFDS ``imagenet_a`` to their position in the 200-class subset (-1 for
    classes outside it is an error).
    """
    if is_class_folder(source):
        dataset = image_folder_dataset(source, image_size=image_size, batch_size=batch_size,
                                       small_images=small_images, class_to_label=class_to_label,
                                       strict=strict)
    else:
        if not tfds_source.is_tfds_spec(source) and not tf.io.gfile.glob(source):
            raise FileNotFoundError(f"{source}: no such TFRecord files, class folder or "
                                    "'tfds:NAME@SPLIT' data set")
        read_classes = len(label_map) if label_map is not None else num_classes
        if tfds_source.is_tfds_spec(source):
            label_offset = 0  # TFDS labels are 0-based
        dataset = pipelines.labeled_dataset(
            source, image_size=image_size, batch_size=batch_size, training=False,
            num_classes=read_classes, label_offset=label_offset, small_images=small_images,
            one_hot=False, strict=strict, deterministic=True)
    if label_map is not None:
        table = tf.constant(np.asarray(label_map, np.int32))

        def relabel(images, labels):
            mapped = tf.gather(table, labels)
            check = tf.debugging.assert_non_negative(
                mapped, message=f"{source}: a label lies outside the evaluated class subset")
            with tf.control_dependencies([check]):
                return images, tf.identity(mapped)

        dataset = dataset.map(relabel)
    return dataset


def subset_label_table(indices: Sequence[int], num_classes: int = 1000) -> list[int]:
    """Full-label -> subset-position table (-1 outside the subset)."""
    table = [-1] * num_classes
    for position, index in enumerate(indices):
        table[index] = position
    return table


def subset_source(benchmark: str, source: str | None, *, image_size: int, batch_size: int,
                  small_images: bool = False, strict: bool = False) -> tf.data.Dataset:
    """ImageNet-A / ImageNet-R: the released folder tree or TFDS (``source=None`` reads the
    TFDS data set), labels = position in the 200-class subset."""
    if benchmark not in SUBSET_INDICES:
        raise ValueError(f"unknown subset benchmark {benchmark!r}; use {sorted(SUBSET_INDICES)}")
    source = source or f"tfds:{TFDS_NAMES[benchmark]}"
    if is_class_folder(source):
        return labeled_source(source, image_size=image_size, batch_size=batch_size,
                              num_classes=200, small_images=small_images, strict=strict,
                              class_to_label=subset_label_map(benchmark))
    return labeled_source(source, image_size=image_size, batch_size=batch_size, num_classes=1000,
                          small_images=small_images, strict=strict,
                          label_map=subset_label_table(SUBSET_INDICES[benchmark]))


# ----------------------------------------------------------------------------- ImageNet-C


def corrupted_source(root: str, corruption: str, severity: int) -> str:
    """The source spec of one corruption and severity under ``root``.

    ``root`` = ``tfds:imagenet2012_corrupted`` gives the TFDS config
    ``imagenet2012_corrupted/<corruption>_<severity>`` (validation split). A directory gives
    ``root/<corruption>/<severity>``: a class-folder tree (released ImageNet-C) or, when it holds
    files rather than folders, our TFRecords (``root/<corruption>/<severity>/*``).
    """
    if tfds_source.is_tfds_spec(root):
        name, split = tfds_source.parse_tfds_spec(root)
        return f"tfds:{name}/{corruption}_{severity}@{split or 'validation'}"
    directory = os.path.join(root, corruption, str(severity))
    if not tf.io.gfile.isdir(directory):
        raise FileNotFoundError(f"{directory}: missing (expected <root>/<corruption>/<severity>)")
    entries = tf.io.gfile.listdir(directory)
    if any(tf.io.gfile.isdir(os.path.join(directory, e)) for e in entries):
        return directory
    return os.path.join(directory, "*")


# ----------------------------------------------------------------------------- ImageNet-P


def read_video(path: str) -> np.ndarray:
    """All frames of a video as uint8 [T, H, W, 3] (imageio with the ffmpeg binary of
    imageio-ffmpeg)."""
    import imageio.v2 as imageio

    try:
        with imageio.get_reader(path, format="FFMPEG") as reader:
            frames = np.stack([np.asarray(frame) for frame in reader])
    except Exception as error:  # imageio/ffmpeg raise many types for bad files
        raise ValueError(f"{path}: cannot decode video ({type(error).__name__}: "
                         f"{str(error).splitlines()[0][:200] if str(error) else ''})") from error
    if frames.ndim == 3:
        frames = frames[..., None]
    if frames.ndim != 4 or frames.shape[0] < 2:
        raise ValueError(f"{path}: expected a sequence of >= 2 frames, got shape {frames.shape}")
    if frames.shape[-1] == 1:
        frames = np.repeat(frames, 3, axis=-1)
    return frames[..., :3].astype(np.uint8)


def list_videos(root: str, perturbation: str, class_to_label: Mapping[str, int] | None = None
                ) -> tuple[list[str], list[int]]:
    """(video paths, labels) of ``root/<perturbation>/<wnid>/*.mp4``; labels from
    ``class_to_label`` (default: ImageNet wnid -> index)."""
    mapping = class_to_label if class_to_label is not None else {
        w: i for i, w in enumerate(imagenet_wnids())}
    paths, labels, _ = list_class_folders(os.path.join(root, perturbation), mapping,
                                          VIDEO_EXTENSIONS)
    return paths, labels


def preprocess_frames(frames: np.ndarray, image_size: int, small_images: bool = False
                      ) -> tf.Tensor:
    """uint8 frames [T, H, W, 3] -> float [T, S, S, 3]: unchanged when already S x S (ImageNet-P
    frames are 224 x 224), else the eval preprocessing of still images (PNG in memory)."""
    if frames.shape[1] == frames.shape[2] == image_size:
        return tf.cast(frames, tf.float32)
    encoded = [tf.io.encode_png(frame) for frame in frames]
    return tf.stack([preprocess_for_eval(e, image_size, small_images=small_images)
                     for e in encoded])
