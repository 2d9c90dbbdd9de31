"""TensorFlow Datasets as a source: ``tfds:NAME`` or ``tfds:NAME@SPLIT``.

NAME is anything ``tfds.load`` accepts (``cifar10``, ``imagenet2012``, ``cifar10:3.0.2``);
SPLIT is a tfds split string (``train``, ``train[:10%]``, ``validation``). Without a split,
training reads ``train`` and evaluation ``validation`` (or ``test`` when the data set has no
validation split). Images are read still encoded (``tfds.decode.SkipDecoding``), as TFDS stores
them (JPEG for ImageNet, PNG for CIFAR), so they go through the same preprocessing and
bad-image accounting as TFRecord files. Labels from TFDS are 0-based. The data directory is
TFDS's own (``TFDS_DATA_DIR`` or ``~/tensorflow_datasets``).
"""

from __future__ import annotations

import tensorflow as tf

TFDS_PREFIX = "tfds:"
EVAL_SPLITS = ("validation", "test")


def is_tfds_spec(source) -> bool:
    """True for a ``tfds:`` data set spec (as opposed to a file pattern)."""
    return isinstance(source, str) and source.startswith(TFDS_PREFIX)


def parse_tfds_spec(spec: str) -> tuple[str, str | None]:
    """``tfds:NAME[@SPLIT]`` -> (NAME, SPLIT or None)."""
    if not is_tfds_spec(spec):
        raise ValueError(f"not a tfds spec: {spec!r} (expected 'tfds:NAME' or 'tfds:NAME@SPLIT')")
    name, _, split = spec[len(TFDS_PREFIX):].partition("@")
    if not name:
        raise ValueError(f"tfds spec {spec!r} has no data set name (e.g. 'tfds:cifar10@train')")
    return name, (split or None)


def _default_split(name: str, training: bool) -> str:
    import tensorflow_datasets as tfds

    if training:
        return "train"
    known = set(tfds.builder(name).info.splits.keys())
    for split in EVAL_SPLITS:
        if split in known:
            return split
    if known:
        raise ValueError(f"tfds data set {name!r} has no {' or '.join(EVAL_SPLITS)} split "
                         f"(splits: {sorted(known)}); give one as 'tfds:{name}@SPLIT'")
    return EVAL_SPLITS[-1]


def tfds_dataset(spec: str, *, training: bool, with_labels: bool,
                 input_context: tf.distribute.InputContext | None, seed: int | None
                 ) -> tf.data.Dataset:
    """Elements {"image": encoded bytes, ["label": 0-based int64], "file": spec, "index"}.

    Per-host sharding goes through ``tfds.ReadConfig(input_context=...)``; training shuffles
    the files (seeded when ``seed`` is given).
    """
    import tensorflow_datasets as tfds

    name, split = parse_tfds_spec(spec)
    split = split or _default_split(name, training)
    read_config = tfds.ReadConfig(input_context=input_context, shuffle_seed=seed)
    dataset = tfds.load(name, split=split, shuffle_files=training, read_config=read_config,
                        decoders={"image": tfds.decode.SkipDecoding()})
    missing = {"image", "label"} - set(dataset.element_spec) if with_labels else (
        {"image"} - set(dataset.element_spec))
    if missing:
        raise ValueError(f"tfds data set {name!r} has no feature(s) {sorted(missing)}; "
                         f"its features are {sorted(dataset.element_spec)}")
    source = tf.constant(f"{TFDS_PREFIX}{name}@{split}")

    def select(index, example):
        element = {"image": example["image"], "file": source, "index": index}
        if with_labels:
            element["label"] = tf.cast(example["label"], tf.int64)
        return element

    return dataset.enumerate().map(select)
