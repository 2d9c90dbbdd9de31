"""tf.data input pipelines for labeled, unlabeled and pseudo-labeled images.

Each builder takes a file pattern (glob, comma-separated globs, or a list) of TFRecord files, or
a ``tfds:NAME[@SPLIT]`` spec, and returns batched float images in 0..255 (plus targets).

Stages: files -> per-host shard (``input_context``; training needs at least one file per
pipeline) -> [training: shuffle files] -> parallel interleave (``cycle_length`` files) ->
[cache] -> [training: shuffle ``shuffle_buffer`` serialized records] -> [repeat] -> parse ->
preprocess (bad images skipped and counted, or an error when ``strict``) -> batch (per-replica
size) -> prefetch. Reference pseudo-label records are read beside their unlabeled files
(``source_data``; `noisy_student.data.reference_join`) and repeated by their copies before
the shuffle.
Training on small images with RandAugment decodes per image and augments whole batches
(``augment_small_batch_for_train``: RandAugment, pad, crop, flip; one stateless seed per batch).
``deterministic=True`` fixes every seed and the element order, for tests and debugging
(RandAugment keeps its own randomness).

The options every builder shares are one `InputOptions`; a builder takes it, or its fields as
keyword arguments (``labeled_dataset(files, image_size=32, batch_size=8, training=False,
num_classes=10)``), or both (the keywords replace the object's fields).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import tensorflow as tf

from noisy_student.data import records, tfds_source
from noisy_student.data.bad_data import DataStats, guarded_map, text
from noisy_student.data.preprocessing import (
    CROP_PADDING,
    augment_small_batch_for_train,
    decode_small_for_train,
    preprocess_for_eval,
    preprocess_for_train,
)
from noisy_student.data.reference_join import is_reference_file, joined_dataset
from noisy_student.data.reference_records import parse_reference
from noisy_student.data.tfrecord_source import READ_CYCLE_LENGTH, list_files, tfrecord_dataset
from noisy_student.targets import teacher_targets

Source = str | Sequence[str]
Element = dict[str, tf.Tensor]

# --seed sets TensorFlow's global seed, and the augmentation's seed draw (`_split_seed` in
# noisy_student.data.preprocessing) takes it on purpose, so that a seeded run augments
# reproducibly; TensorFlow warns about exactly that at every map function it traces.
GLOBAL_SEED_WARNING = r"Seed -?\d+ from outer graph might be getting used"


@dataclasses.dataclass(frozen=True)
class InputOptions:
    """How a pipeline reads, preprocesses and batches images (the options of every builder).

    ``batch_size`` is global: with ``input_context`` each pipeline yields per-replica batches.
    ``shuffle_buffer`` counts serialized records (shuffled before parsing); ``cycle_length``
    is the number of files read at once. ``repeat`` and ``drop_remainder`` default to
    ``training``. ``stats`` counts what was read
    and skipped (a fresh DataStats when None). ``seed`` (0 with ``deterministic``) seeds the
    file order, shuffling and augmentation.
    """

    image_size: int
    batch_size: int
    training: bool
    small_images: bool = False
    randaug_num_layers: int = 0
    randaug_magnitude: float = 10.0
    input_context: tf.distribute.InputContext | None = None
    cache: bool = False
    shuffle_buffer: int = 1024
    cycle_length: int = READ_CYCLE_LENGTH
    deterministic: bool = False
    strict: bool = False
    repeat: bool | None = None
    drop_remainder: bool | None = None
    stats: DataStats | None = None
    dtype: tf.DType = tf.float32
    crop_padding: int = CROP_PADDING
    seed: int | None = None


def input_options(options: InputOptions | None = None, **fields: Any) -> InputOptions:
    """`options` with `fields` replaced, or new options made of `fields` (a TypeError names an
    unknown or a missing field)."""
    if options is None:
        return InputOptions(**fields)
    return dataclasses.replace(options, **fields) if fields else options


def _check_first_record(path: str, parse: Callable[[tf.Tensor], Element], kind: str) -> None:
    """Parses the first record of ``path`` eagerly, so a wrong kind of file fails at once with
    a clear message instead of deep inside tf.data."""
    try:
        first = next(iter(tf.data.TFRecordDataset(path).take(1)), None)
    except (tf.errors.DataLossError, tf.errors.OutOfRangeError):
        return  # damaged files are handled (counted or raised) by the pipeline itself
    if first is None:
        return
    try:
        parse(first)
    except (tf.errors.InvalidArgumentError, ValueError) as error:
        raise ValueError(
            f"{path}: the first record is not a {kind} tf.train.Example "
            f"({str(error).splitlines()[0][:300]}). See docs/data_format.md for the features "
            "each kind of record needs.") from error


def _build(source: Source, options: InputOptions, **kwargs: Any) -> tf.data.Dataset:
    """`_build_pipeline` without TensorFlow's warning about the global seed (see
    GLOBAL_SEED_WARNING)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=GLOBAL_SEED_WARNING, category=UserWarning)
        return _build_pipeline(source, options, **kwargs)


def _build_pipeline(source: Source, options: InputOptions, *, kind: str,
                    parse: Callable[[tf.Tensor], Element],
                    output: Callable[[Element, tf.Tensor], object],
                    check: Callable[[Element], Element] | None = None,
                    read: Callable[..., tf.data.Dataset] = tfrecord_dataset,
                    parse_read: Callable[[Element], Element] | None = None) -> tf.data.Dataset:
    """The one pipeline behind the three builders. ``parse`` maps a serialized record to a
    dict with "image" (TFDS elements come parsed), ``check`` validates a parsed element (its
    errors always raise), ``output`` maps (element, preprocessed image) to the model input.
    ``read`` gives the files' serialized elements (`tfrecord_dataset`'s arguments) and
    ``parse_read`` parses one of them (default: ``parse`` of its "record")."""
    o = options
    training, deterministic, context = o.training, o.deterministic, o.input_context
    repeat = training if o.repeat is None else o.repeat
    drop_remainder = training if o.drop_remainder is None else o.drop_remainder
    stats = o.stats if o.stats is not None else DataStats()
    seed = 0 if deterministic and o.seed is None else o.seed
    pipeline_id = context.input_pipeline_id if context else 0
    if seed is not None:
        seed += 1_000_003 * pipeline_id
    per_replica_batch = (context.get_per_replica_batch_size(o.batch_size)
                         if context else o.batch_size)

    def cache_shuffle_repeat(dataset: tf.data.Dataset) -> tf.data.Dataset:
        if o.cache:
            dataset = dataset.cache()
        if training:  # serialized records: a big buffer costs their bytes, not dense tensors
            dataset = dataset.shuffle(o.shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
        return dataset.repeat() if repeat else dataset

    if tfds_source.is_tfds_spec(source):
        dataset = cache_shuffle_repeat(tfds_source.tfds_dataset(
            source, training=training, with_labels=kind == "labeled", input_context=context,
            seed=seed))
    else:
        files = list_files(source)
        if parse_read is None:
            _check_first_record(files[0], parse, kind)
        dataset = cache_shuffle_repeat(read(
            files, training=training, input_context=context, stats=stats, strict=o.strict,
            deterministic=deterministic, seed=seed, cycle_length=o.cycle_length))
        parse_read = parse_read or (lambda e: parse(e["record"]))
        dataset = dataset.map(
            lambda e: {"file": e["file"], "index": e["index"], **parse_read(e)},
            num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic)
    if check is not None:
        dataset = dataset.map(check)
    if deterministic:
        dataset = dataset.enumerate().map(
            lambda i, e: {**e, "seed": tf.stack([tf.constant(seed, tf.int64), i])})

    # Small images with RandAugment: decode per image, augment whole batches (RandAugment's
    # per-image op dispatch would dominate at 32 px; see augment_small_batch_for_train).
    batched_augment = training and o.small_images and o.randaug_num_layers > 0

    def preprocess(element: Element):
        if batched_augment:
            image = decode_small_for_train(element["image"], o.image_size)
        elif training:
            image = preprocess_for_train(
                element["image"], o.image_size, small_images=o.small_images,
                randaug_num_layers=o.randaug_num_layers,
                randaug_magnitude=o.randaug_magnitude, dtype=o.dtype, seed=element.get("seed"))
        else:
            image = preprocess_for_eval(element["image"], o.image_size,
                                        small_images=o.small_images, crop_padding=o.crop_padding,
                                        dtype=o.dtype)
        return output(element, image)

    dataset = guarded_map(dataset, preprocess, stats=stats, strict=o.strict,
                          deterministic=deterministic)
    dataset = dataset.batch(per_replica_batch, drop_remainder=drop_remainder)
    if batched_augment:
        dataset = dataset.enumerate().map(
            lambda i, batch: _augment_batch(batch, i, o.image_size, o.randaug_num_layers,
                                            o.randaug_magnitude, o.dtype,
                                            seed if deterministic else None),
            num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic)
    dataset = dataset.prefetch(tf.data.AUTOTUNE)
    data_options = tf.data.Options()
    data_options.deterministic = deterministic
    return dataset.with_options(data_options)


def _augment_batch(batch, index: tf.Tensor, image_size: int, num_layers: int,
                   magnitude: float, dtype: tf.DType, seed: int | None):
    """Applies `augment_small_batch_for_train` to the images of a batch (the first component
    of a tuple, or the batch itself); batch ``index`` and ``seed`` give a stateless seed."""
    batch_seed = None
    if seed is not None:
        batch_seed = tf.random.experimental.stateless_fold_in(
            tf.stack([tf.constant(seed, tf.int64), index]), 0x5EED)

    def augment(images):
        return augment_small_batch_for_train(
            images, image_size, randaug_num_layers=num_layers, randaug_magnitude=magnitude,
            dtype=dtype, seed=batch_seed)

    if isinstance(batch, tuple):
        return (augment(batch[0]), *batch[1:])
    return augment(batch)


def _check_label(element: Element, num_classes: int, label_offset: int) -> Element:
    """Fails with the file name when a label is outside [0, num_classes)."""
    label = element["label"]
    valid = tf.logical_and(label >= 0, label < num_classes)
    message = text(
        "label ", label, f" (after subtracting label_offset={label_offset}) is outside "
        f"[0, {num_classes}) in record ", element["index"], " of ", element["file"],
        "; 1-based files (ImageNet layout) need label_offset=1, and num_classes must cover "
        "every class")
    with tf.control_dependencies([tf.debugging.Assert(valid, [message], summarize=1)]):
        return {**element, "label": tf.identity(label)}


def labeled_dataset(file_pattern: Source, options: InputOptions | None = None, *,
                    num_classes: int, label_offset: int = 0, one_hot: bool = True,
                    **fields: Any) -> tf.data.Dataset:
    """Batches of (images [B, S, S, 3] in 0..255, labels).

    Labels are one-hot float32 [B, num_classes] (``one_hot=True``) or int32 [B]. Stored labels
    minus ``label_offset`` must lie in [0, num_classes) (ImageNet files: label_offset=1).
    ``options`` and ``fields``: see InputOptions.
    """
    if tfds_source.is_tfds_spec(file_pattern) and label_offset:
        raise ValueError(f"{file_pattern}: TFDS labels are 0-based; use label_offset=0")

    def parse(record):
        return records.parse_labeled(record, label_offset)

    def check(element):
        return _check_label(element, num_classes, label_offset)

    def output(element, image):
        if one_hot:
            return image, tf.one_hot(element["label"], num_classes, dtype=tf.float32)
        return image, tf.cast(element["label"], tf.int32)

    return _build(file_pattern, input_options(options, **fields), kind="labeled", parse=parse,
                  output=output, check=check)


def class_counts(file_pattern: Source, num_classes: int, label_offset: int = 0) -> list[int]:
    """Labeled records per class in [0, num_classes), from one read of the TFRecord files that
    parses only the labels (damaged files up to the damage; labels outside the range are left
    to the pipelines' check)."""
    label_spec = {records.LABEL_KEY: tf.io.FixedLenFeature([], tf.int64)}
    labels = (
        tf.data.Dataset.from_tensor_slices(list_files(file_pattern))
        .interleave(lambda path: tf.data.TFRecordDataset(path).ignore_errors(),
                    num_parallel_calls=tf.data.AUTOTUNE)
        .map(lambda record: tf.io.parse_single_example(record, label_spec)[records.LABEL_KEY]
             - label_offset, num_parallel_calls=tf.data.AUTOTUNE)
        .ignore_errors()
        .filter(lambda label: (label >= 0) & (label < num_classes))
        .batch(4096))
    counts = labels.reduce(tf.zeros([num_classes], tf.int64), lambda total, batch: total + (
        tf.math.bincount(batch, minlength=num_classes, maxlength=num_classes, dtype=tf.int64)))
    return [int(count) for count in counts.numpy()]


def check_class_coverage(file_pattern: Source, num_classes: int, label_offset: int = 0, *,
                         strict: bool = False, class_names: Sequence[str] | None = None,
                         listed: int = 20) -> list[int]:
    """The classes of [0, num_classes) without a labeled image in ``file_pattern`` (TFRecords;
    a ``tfds:`` source is not checked), logged as a warning naming them (the first ``listed``),
    or a ValueError with ``strict``: usually a wrong --num_classes or --label_offset."""
    if tfds_source.is_tfds_spec(file_pattern):
        return []
    counts = class_counts(file_pattern, num_classes, label_offset)
    empty = [c for c, count in enumerate(counts) if count == 0]
    if empty:
        names = [f"{c} ({class_names[c]})" if class_names else str(c) for c in empty[:listed]]
        more = f" and {len(empty) - listed} more" if len(empty) > listed else ""
        message = (f"{len(empty)} of the {num_classes} classes have no labeled image in "
                   f"{file_pattern}: {', '.join(names)}{more}. Check --num_classes and "
                   f"--label_offset={label_offset}")
        if strict:
            raise ValueError(f"{message} (strict data checking).")
        logging.getLogger(__name__).warning("%s; --strict_data makes this an error.", message)
    return empty


def unlabeled_dataset(file_pattern: Source, options: InputOptions | None = None, *,
                      include_encoded: bool = False, **fields: Any) -> tf.data.Dataset:
    """Batches of images [B, S, S, 3] from any records with ``image/encoded``.

    ``include_encoded=True`` yields (images, encoded bytes [B]) instead, e.g. for a teacher
    that writes pseudo-labeled records of the same images. ``options`` and ``fields``: see
    InputOptions.
    """

    def output(element, image):
        return (image, element["image"]) if include_encoded else image

    return _build(file_pattern, input_options(options, **fields), kind="unlabeled",
                  parse=records.parse_unlabeled, output=output)


def pseudo_labeled_dataset(file_pattern: Source, options: InputOptions | None = None, *,
                           num_classes: int, temperature: float = 1.0, hard: bool = False,
                           source_data: Source | None = None,
                           **fields: Any) -> tf.data.Dataset:
    """Batches of (images, targets float32 [B, num_classes]).

    Soft targets are the stored distribution sharpened by ``temperature``; ``hard=True`` gives
    the one-hot of the teacher's argmax (the record's ``label``). Reference records read their
    images from ``source_data`` (the unlabeled files they were labeled from). ``options`` and
    ``fields``: see InputOptions.
    """
    if tfds_source.is_tfds_spec(file_pattern):
        raise ValueError(f"{file_pattern}: pseudo-labeled data must come from TFRecord files")
    if not hard and temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")

    def parse(record):
        return records.parse_pseudo_labeled(record, num_classes)

    def output(element, image):
        if hard:
            return image, tf.one_hot(element["label"], num_classes, dtype=tf.float32)
        return image, teacher_targets(element["probabilities"], temperature, from_logits=False)

    options = input_options(options, **fields)
    if not is_reference_file(list_files(file_pattern)[0]):
        return _build(file_pattern, options, kind="pseudo-labeled", parse=parse, output=output)

    def parse_joined(element):
        reference = parse_reference(element["ref"], num_classes)
        return {**records.parse_unlabeled(element["record"]),
                **{k: reference[k] for k in ("probabilities", "label", "prob")}}

    return _build(file_pattern, options, kind="pseudo-labeled", parse=parse, output=output,
                  read=functools.partial(joined_dataset, source_pattern=source_data),
                  parse_read=parse_joined)
