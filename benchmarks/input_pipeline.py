"""Input-pipeline throughput: our RandAugment against keras.layers.RandAugment, same run.

Both pipelines decode real-sized JPEGs (CIFAR-10 test images upscaled to 400x350 with Pillow,
written to a temporary folder), take an Inception crop, resize bicubic to 224, flip, then apply
RandAugment with N=2 ops:
  ours   noisy_student.data.randaugment (via preprocess_for_train), magnitude M=15;
  keras  keras.layers.RandAugment(value_range=(0, 255), num_ops=2, factor=1.0,
         interpolation="nearest"), one image per call like ours.
Factor mapping: the Keras layer takes one strength in [0, 1] that each of its 11 sub-layers reads
on its own scale and samples uniformly up to; the reference's normalized strength is M / 10 =
1.5 for M=15, beyond the layer's bound, so we give it the strongest value it allows, 1.0.
Interpolation is nearest on both sides (the reference's affine ops are nearest).
The Keras layer computes all 11 ops for each of its num_ops steps and selects one with `where`;
ours runs only the chosen op (one tf.switch_case per step).

Throughput is images/second in steady state (one iterator over the repeated dataset, batches of
32, a warm-up span excluded), median of repeats, with 1 and 2 parallel calls in the map.
`--profile` also times each stage alone.

    python benchmarks/input_pipeline.py            # table + ratio ours/keras
    python benchmarks/input_pipeline.py --profile  # plus stage and per-op timings
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from PIL import Image  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from noisy_student.data import randaugment  # noqa: E402

try:
    from noisy_student.data.preprocessing import preprocess_for_train

    CROP_SOURCE = "noisy_student.data.preprocessing.preprocess_for_train"
except ImportError:  # the preprocessing module is written on another branch
    preprocess_for_train = None
    CROP_SOURCE = "local fallback in benchmarks/input_pipeline.py"

BATCH = 32
JPEG_SIZE = (400, 350)  # width, height


def _fallback_preprocess_for_train(
    image_bytes: tf.Tensor,
    image_size: int,
    *,
    randaug_num_layers: int = 0,
    randaug_magnitude: float = 10.0,
) -> tf.Tensor:
    """FALLBACK, used only when noisy_student.data.preprocessing is not importable.

    Inception crop (area 0.08-1, aspect 3/4-4/3, 10 attempts, centre crop when it fails),
    bicubic resize, random flip, optional RandAugment; float32 0..255.
    """
    shape = tf.image.extract_jpeg_shape(image_bytes)
    begin, size, _ = tf.image.sample_distorted_bounding_box(
        shape,
        bounding_boxes=tf.constant([0.0, 0.0, 1.0, 1.0], shape=[1, 1, 4]),
        min_object_covered=0.1,
        aspect_ratio_range=(3 / 4, 4 / 3),
        area_range=(0.08, 1.0),
        max_attempts=10,
        use_image_if_no_bounding_boxes=True,
    )
    side = tf.cast(
        image_size / (image_size + 32) * tf.cast(tf.minimum(shape[0], shape[1]), tf.float32),
        tf.int32,
    )
    centre = tf.stack([(shape[0] - side + 1) // 2, (shape[1] - side + 1) // 2, side, side])
    sampled = tf.stack([begin[0], begin[1], size[0], size[1]])
    window = tf.where(tf.reduce_all(size[:2] == shape[:2]), centre, sampled)
    image = tf.image.decode_and_crop_jpeg(image_bytes, window, channels=3)
    image = tf.image.resize(image, [image_size, image_size], method="bicubic")
    image = tf.image.random_flip_left_right(image)
    if randaug_num_layers > 0:
        pixels = tf.cast(tf.clip_by_value(image, 0.0, 255.0), tf.uint8)
        pixels = randaugment.distort_image_with_randaugment(
            pixels, randaug_num_layers, randaug_magnitude
        )
        image = tf.cast(pixels, tf.float32)
    return image


def _preprocess(image_bytes, image_size, num_layers, magnitude):
    fn = preprocess_for_train or _fallback_preprocess_for_train
    return fn(
        image_bytes,
        image_size,
        randaug_num_layers=num_layers,
        randaug_magnitude=magnitude,
    )


def make_jpegs(cifar_dir: str, count: int, folder: str) -> list[bytes]:
    """Write `count` CIFAR-10 test images upscaled to 400x350 as JPEG; return their bytes."""
    path = os.path.join(cifar_dir, "cifar10_test.npz")
    if not os.path.exists(path):
        raise SystemExit(f"{path} not found: pass --cifar-dir (folder of cifar10_test.npz)")
    with np.load(path, allow_pickle=False) as data:
        images = data["images"][:count]
    blobs = []
    for i, pixels in enumerate(images):
        name = os.path.join(folder, f"{i:05d}.jpg")
        Image.fromarray(pixels).resize(JPEG_SIZE, Image.BICUBIC).save(name, quality=90)
        with open(name, "rb") as f:
            blobs.append(f.read())
    return blobs


def throughput(dataset: tf.data.Dataset, count: int, repeats: int) -> float:
    """Median images/second of `repeats` timed spans of `count` images from one iterator, after a
    warm-up span (so tracing and iterator start-up are excluded). `dataset` repeats forever."""
    iterator = iter(dataset)
    batches = max(count // BATCH, 1)
    for _ in range(batches):
        next(iterator)
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(batches):
            next(iterator)
        rates.append(batches * BATCH / (time.perf_counter() - start))
    return statistics.median(rates)


def _dataset(source, fn, parallel: int) -> tf.data.Dataset:
    # No prefetch: a filled prefetch buffer would be counted as free images in a timed span.
    ds = source.repeat().map(fn, num_parallel_calls=parallel, deterministic=False)
    return ds.batch(BATCH)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--num-images", type=int, default=192)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--num-layers", type=int, default=2)
    parser.add_argument("--magnitude", type=float, default=15.0)
    parser.add_argument("--keras-factor", type=float, default=1.0)
    parser.add_argument("--parallel", default="1,2", help="num_parallel_calls values")
    parser.add_argument(
        "--cifar-dir",
        # The shared uint8 .npz shards: $CIFAR10_NPZ_DIR (as the tests and the other
        # benchmarks), else ../shared/data/cifar10 beside the checkout.
        default=os.environ.get("CIFAR10_NPZ_DIR")
        or os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "cifar10"),
    )
    parser.add_argument("--profile", action="store_true", help="also time each stage alone")
    args = parser.parse_args()

    import keras

    size, n, m = args.image_size, args.num_layers, args.magnitude
    parallels = [int(p) for p in args.parallel.split(",")]
    keras_layer = keras.layers.RandAugment(
        value_range=(0, 255), num_ops=n, factor=args.keras_factor, interpolation="nearest"
    )

    with tempfile.TemporaryDirectory() as folder:
        blobs = make_jpegs(args.cifar_dir, args.num_images, folder)
    count = len(blobs)
    source = tf.data.Dataset.from_tensor_slices(tf.constant(blobs))
    print(
        f"{count} JPEGs {JPEG_SIZE[0]}x{JPEG_SIZE[1]} -> {size}x{size}, N={n}, M={m}, "
        f"Keras factor={args.keras_factor}; crop from {CROP_SOURCE}"
    )
    print(
        f"TF {tf.__version__}, Keras {keras.__version__}, {os.cpu_count()} CPUs visible; "
        f"median of {args.repeats} spans of {count} images after a warm-up span\n"
    )

    pipelines = {
        "ours  (crop+flip+RandAugment)": lambda b: _preprocess(b, size, n, m),
        "keras (crop+flip+RandAugment layer)": lambda b: keras_layer(_preprocess(b, size, 0, m)),
    }
    results = {}
    for name, fn in pipelines.items():
        for p in parallels:
            results[name, p] = throughput(_dataset(source, fn, p), count, args.repeats)
    header = "pipeline".ljust(38) + "".join(f"{f'parallel={p} img/s':>20}" for p in parallels)
    print(header)
    for name in pipelines:
        print(name.ljust(38) + "".join(f"{results[name, p]:20.1f}" for p in parallels))
    ours, theirs = list(pipelines)
    print(
        "ratio ours/keras".ljust(38)
        + "".join(f"{results[ours, p] / results[theirs, p]:20.2f}" for p in parallels)
    )

    if args.profile:
        profile(source, count, args, keras_layer)


def profile(source, count, args, keras_layer) -> None:
    """Stage costs in ms/image with one parallel call: each stage alone and cumulative."""
    size, n, m = args.image_size, args.num_layers, args.magnitude
    cropped = [
        tf.cast(x, tf.uint8)
        for x in source.map(lambda b: _preprocess(b, size, 0, m)).batch(BATCH).unbatch()
    ]
    pixels = tf.data.Dataset.from_tensor_slices(tf.stack(cropped))

    def ms(dataset):
        return 1000.0 / throughput(dataset, count, args.repeats)

    rows = {
        "tf.data overhead (identity map, batch)": ms(_dataset(source, lambda b: b, 1)),
        "decode JPEG": ms(_dataset(source, lambda b: tf.io.decode_jpeg(b, channels=3), 1)),
        "decode + crop + resize + flip": ms(
            _dataset(source, lambda b: _preprocess(b, size, 0, m), 1)
        ),
        "full ours": ms(_dataset(source, lambda b: _preprocess(b, size, n, m), 1)),
        f"our RandAugment alone (N={n}, uint8 224)": ms(
            _dataset(pixels, lambda x: randaugment.distort_image_with_randaugment(x, n, m), 1)
        ),
        f"keras RandAugment alone (num_ops={n})": ms(
            _dataset(pixels, lambda x: keras_layer(tf.cast(x, tf.float32)), 1)
        ),
    }
    print("\nstage (1 parallel call)".ljust(46) + "ms/image")
    for name, value in rows.items():
        print(name.ljust(45) + f"{value:8.2f}")

    print(f"\nour ops alone at M={m:g} (1 parallel call)".ljust(46) + "ms/image")
    level_args = (
        tf.constant(m, tf.float64),
        tf.constant(randaugment.REFERENCE_TRANSLATE_CONST, tf.float64),
        tf.constant(randaugment.REFERENCE_CUTOUT_CONST, tf.float64),
        tf.constant(1.0, tf.float64),
        tf.constant([size // 2, size // 2]),
    )
    for index, name in enumerate(randaugment.OP_NAMES):
        op = _dataset(pixels, lambda x, i=index: randaugment._apply_op(i, x, *level_args), 1)
        print(name.ljust(45) + f"{ms(op):8.2f}")


if __name__ == "__main__":
    main()
