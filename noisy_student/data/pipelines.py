"""tf.data input pipelines for labeled, unlabeled and pseudo-labeled images.

Each builder takes a file pattern (glob, comma-separated globs, or a list) of TFRecord files, or
a ``tfds:NAME[@SPLIT]`` spec, and returns batched float images in 0..255 (plus targets).

Stages: files -> per-host shard (``input_context``) -> [training: shuffle files] -> parallel
interleave -> parse -> [cache] -> [training: shuffle] -> [repeat] -> preprocess (bad images
skipped and counted, or an error when ``strict``) -> batch (per-replica size) -> prefetch.
Training on small images with RandAugment decodes per image and augments whole batches
(``augment_small_batch_for_train``: RandAugment, pad, crop, flip; one stateless seed per batch).
``deterministic=True`` fixes every seed and the element order, for tests and debugging
(RandAugment keeps its own randomness).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

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
from noisy_student.data.tfrecord_source import list_files, tfrecord_dataset

Source = str | Sequence[str]
Element = dict[str, tf.Tensor]


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


def _build(source: Source, *, kind: str, parse: Callable[[tf.Tensor], Element],
           output: Callable[[Element, tf.Tensor], object],
           check: Callable[[Element], Element] | None = None, image_size: int, batch_size: int,
           training: bool, small_image: bool, randaug_num_layers: int,
           randaug_magnitude: float, crop_padding: int,
           input_context: tf.distribute.InputContext | None, cache: bool,
           shuffle_buffer: int, deterministic: bool, strict: bool, repeat: bool | None,
           drop_remainder: bool | None, stats: DataStats | None, dtype: tf.DType,
           seed: int | None) -> tf.data.Dataset:
    """The one pipeline behind the three builders. ``parse`` maps a serialized record to a
    dict with "image" (TFDS elements come parsed), ``check`` validates a parsed element (its
    errors always raise), ``output`` maps (element, preprocessed image) to the model input."""
    repeat = training if repeat is None else repeat
    drop_remainder = training if drop_remainder is None else drop_remainder
    stats = stats if stats is not None else DataStats()
    if deterministic and seed is None:
        seed = 0
    pipeline_id = input_context.input_pipeline_id if input_context else 0
    if seed is not None:
        seed += 1_000_003 * pipeline_id
    per_replica_batch = (input_context.get_per_replica_batch_size(batch_size)
                         if input_context else batch_size)

    if tfds_source.is_tfds_spec(source):
        dataset = tfds_source.tfds_dataset(source, training=training,
                                           with_labels=kind == "labeled",
                                           input_context=input_context, seed=seed)
    else:
        files = list_files(source)
        _check_first_record(files[0], parse, kind)
        dataset = tfrecord_dataset(files, training=training, input_context=input_context,
                                   stats=stats, strict=strict, deterministic=deterministic,
                                   seed=seed)
        dataset = dataset.map(
            lambda e: {"file": e["file"], "index": e["index"], **parse(e["record"])},
            num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic)
    if check is not None:
        dataset = dataset.map(check)
    if cache:
        dataset = dataset.cache()
    if training:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        dataset = dataset.repeat()
    if deterministic:
        dataset = dataset.enumerate().map(
            lambda i, e: {**e, "seed": tf.stack([tf.constant(seed, tf.int64), i])})

    # Small images with RandAugment: decode per image, augment whole batches (RandAugment's
    # per-image op dispatch would dominate at 32 px; see augment_small_batch_for_train).
    batched_augment = training and small_image and randaug_num_layers > 0

    def preprocess(element: Element):
        if batched_augment:
            image = decode_small_for_train(element["image"], image_size)
        elif training:
            image = preprocess_for_train(
                element["image"], image_size, small_image=small_image,
                randaug_num_layers=randaug_num_layers, randaug_magnitude=randaug_magnitude,
                dtype=dtype, seed=element.get("seed"))
        else:
            image = preprocess_for_eval(element["image"], image_size, small_image=small_image,
                                        crop_padding=crop_padding, dtype=dtype)
        return output(element, image)

    dataset = guarded_map(dataset, preprocess, stats=stats, strict=strict,
                          deterministic=deterministic)
    dataset = dataset.batch(per_replica_batch, drop_remainder=drop_remainder)
    if batched_augment:
        dataset = dataset.enumerate().map(
            lambda i, batch: _augment_batch(batch, i, image_size, randaug_num_layers,
                                            randaug_magnitude, dtype,
                                            seed if deterministic else None),
            num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic)
    dataset = dataset.prefetch(tf.data.AUTOTUNE)
    options = tf.data.Options()
    options.deterministic = deterministic
    return dataset.with_options(options)


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


def labeled_dataset(file_pattern: Source, *, image_size: int, batch_size: int, training: bool,
                    num_classes: int, label_offset: int = 0, small_image: bool = False,
                    randaug_num_layers: int = 0, randaug_magnitude: float = 10.0,
                    input_context: tf.distribute.InputContext | None = None,
                    cache: bool = False, shuffle_buffer: int = 1024,
                    deterministic: bool = False, strict: bool = False, one_hot: bool = True,
                    repeat: bool | None = None, drop_remainder: bool | None = None,
                    stats: DataStats | None = None, dtype: tf.DType = tf.float32,
                    crop_padding: int = CROP_PADDING, seed: int | None = None
                    ) -> tf.data.Dataset:
    """Batches of (images [B, S, S, 3] in 0..255, labels).

    Labels are one-hot float32 [B, num_classes] (``one_hot=True``) or int32 [B]. Stored labels
    minus ``label_offset`` must lie in [0, num_classes) (ImageNet files: label_offset=1).
    ``batch_size`` is global: with ``input_context`` each pipeline yields per-replica batches.
    ``repeat`` and ``drop_remainder`` default to ``training``.
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

    return _build(file_pattern, kind="labeled", parse=parse, output=output, check=check,
                  image_size=image_size, batch_size=batch_size, training=training,
                  small_image=small_image, randaug_num_layers=randaug_num_layers,
                  randaug_magnitude=randaug_magnitude, crop_padding=crop_padding,
                  input_context=input_context, cache=cache, shuffle_buffer=shuffle_buffer,
                  deterministic=deterministic, strict=strict, repeat=repeat,
                  drop_remainder=drop_remainder, stats=stats, dtype=dtype, seed=seed)


def unlabeled_dataset(file_pattern: Source, *, image_size: int, batch_size: int, training: bool,
                      small_image: bool = False, randaug_num_layers: int = 0,
                      randaug_magnitude: float = 10.0,
                      input_context: tf.distribute.InputContext | None = None,
                      cache: bool = False, shuffle_buffer: int = 1024,
                      deterministic: bool = False, strict: bool = False,
                      repeat: bool | None = None, drop_remainder: bool | None = None,
                      stats: DataStats | None = None, dtype: tf.DType = tf.float32,
                      crop_padding: int = CROP_PADDING, seed: int | None = None,
                      include_encoded: bool = False) -> tf.data.Dataset:
    """Batches of images [B, S, S, 3] from any records with ``image/encoded``.

    ``include_encoded=True`` yields (images, encoded bytes [B]) instead, e.g. for a teacher
    that writes pseudo-labeled records of the same images.
    """

    def output(element, image):
        return (image, element["image"]) if include_encoded else image

    return _build(file_pattern, kind="unlabeled", parse=records.parse_unlabeled, output=output,
                  image_size=image_size, batch_size=batch_size, training=training,
                  small_image=small_image, randaug_num_layers=randaug_num_layers,
                  randaug_magnitude=randaug_magnitude, crop_padding=crop_padding,
                  input_context=input_context, cache=cache, shuffle_buffer=shuffle_buffer,
                  deterministic=deterministic, strict=strict, repeat=repeat,
                  drop_remainder=drop_remainder, stats=stats, dtype=dtype, seed=seed)


def soften(probabilities: tf.Tensor, temperature: float) -> tf.Tensor:
    """``probabilities ** (1/T)`` renormalized, computed in log space (zeros stay zero)."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    return tf.nn.softmax(tf.math.log(probabilities) / temperature, axis=-1)


def pseudo_labeled_dataset(file_pattern: Source, *, image_size: int, batch_size: int,
                           training: bool, num_classes: int, temperature: float = 1.0,
                           hard: bool = False, small_image: bool = False,
                           randaug_num_layers: int = 0, randaug_magnitude: float = 10.0,
                           input_context: tf.distribute.InputContext | None = None,
                           cache: bool = False, shuffle_buffer: int = 1024,
                           deterministic: bool = False, strict: bool = False,
                           repeat: bool | None = None, drop_remainder: bool | None = None,
                           stats: DataStats | None = None, dtype: tf.DType = tf.float32,
                           crop_padding: int = CROP_PADDING, seed: int | None = None
                           ) -> tf.data.Dataset:
    """Batches of (images, targets float32 [B, num_classes]).

    Soft targets are the stored distribution sharpened by ``temperature``; ``hard=True`` gives
    the one-hot of the teacher's argmax (the record's ``label``).
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
        return image, soften(element["probabilities"], temperature)

    return _build(file_pattern, kind="pseudo-labeled", parse=parse, output=output,
                  image_size=image_size, batch_size=batch_size, training=training,
                  small_image=small_image, randaug_num_layers=randaug_num_layers,
                  randaug_magnitude=randaug_magnitude, crop_padding=crop_padding,
                  input_context=input_context, cache=cache, shuffle_buffer=shuffle_buffer,
                  deterministic=deterministic, strict=strict, repeat=repeat,
                  drop_remainder=drop_remainder, stats=stats, dtype=dtype, seed=seed)
