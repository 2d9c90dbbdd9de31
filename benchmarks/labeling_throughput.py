"""Throughput of `label_shards` against a plain `model.predict` on the same images, same run.

label_shards does the whole job: read TFRecords, decode and preprocess (tf.data, parallel),
run the teacher, softmax, encode and write pseudo-labeled records. The peer only runs
`model.predict` on the same images already decoded into one NumPy array (decoding excluded), so
a ratio near 1 means the pipeline around the model costs little. Tracing is excluded from both
(one warm-up each); the two alternate and each figure is the median of --repeats runs. Since
single runs on a shared or throttled CPU differ by up to 2x, the pairs' ratio is also given as
a geometric mean with a 95% t-interval over the pairs (use --repeats 8 or more).

    python benchmarks/labeling_throughput.py            # 32x32 CIFAR-10 PNGs, B0 small-image
    python benchmarks/labeling_throughput.py --resolution 224 --images 256   # 224 JPEG path
On a shared CPU the figures move with the load of other processes; compare the ratio.
--storage auto picks what the pipeline's --pseudo_label_storage=auto picks: float16 copy
records for 10 classes (32 px), reference records for 1,000 (224 px). Each run merges its
figures, keyed by resolution, into --out (benchmarks/results/labeling_throughput.json).
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import shutil
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import paired_stats  # noqa: E402
import provenance  # noqa: E402
import tensorflow as tf  # noqa: E402
from cifar_data import cifar_test_images  # noqa: E402
from PIL import Image  # noqa: E402

from efficientnet_tf import create_model  # noqa: E402
from noisy_student.config import REFERENCE_FROM_CLASSES  # noqa: E402
from noisy_student.data.records import encode_unlabeled  # noqa: E402
from noisy_student.pseudo_labels.labeling import label_shards, make_label_fn  # noqa: E402

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                       "labeling_throughput.json")


def encoded_images(count: int, resolution: int) -> list[bytes]:
    """CIFAR-10 test images: PNG at 32x32, else upscaled to resolution/0.875 JPEG (q90), so the
    eval center crop takes the image back to `resolution`."""
    out = []
    for image in cifar_test_images(count):
        buffer = io.BytesIO()
        if resolution <= 32:
            Image.fromarray(image).save(buffer, format="PNG")
        else:
            side = round(resolution / 0.875)
            Image.fromarray(image).resize((side, side), Image.BICUBIC).save(
                buffer, format="JPEG", quality=90)
        out.append(buffer.getvalue())
    return out


def write_shards(directory: str, encoded: list[bytes], num_shards: int) -> str:
    per_shard = -(-len(encoded) // num_shards)
    for s in range(num_shards):
        path = os.path.join(directory, f"unlabeled-{s:05d}-of-{num_shards:05d}")
        with tf.io.TFRecordWriter(path) as writer:
            for data in encoded[s * per_shard:(s + 1) * per_shard]:
                writer.write(encode_unlabeled(data))
    return os.path.join(directory, "unlabeled-*")


def decoded(encoded: list[bytes], resolution: int) -> np.ndarray:
    """The peer's input: Pillow decode plus the same center crop fraction, bicubic resize."""
    images = []
    for data in encoded:
        image = Image.open(io.BytesIO(data)).convert("RGB")
        if image.size != (resolution, resolution):
            side = min(image.size) * resolution // (resolution + 32)
            left, top = (image.width - side + 1) // 2, (image.height - side + 1) // 2
            image = image.crop((left, top, left + side, top + side)).resize(
                (resolution, resolution), Image.BICUBIC)
        images.append(np.asarray(image))
    return np.stack(images).astype("float32")


def pair_ratio(ours: list[float], peer: list[float]) -> dict:
    """The run pairs' ratio ours / peer as a geometric mean with a 95% t-interval (over the
    pairs' log ratios; bounds None for one pair)."""
    difference = paired_stats.paired_difference(
        {i: math.log(x) for i, x in enumerate(ours)}, {i: math.log(x) for i, x in enumerate(peer)})
    return {"ratio": math.exp(difference["mean"]),
            **{key: None if difference[key] is None else math.exp(difference[key])
               for key in ("low", "high")}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--images", type=int, default=2048)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", default="b0")
    parser.add_argument("--storage", default="auto",
                        help="pseudo-label storage (auto: as --pseudo_label_storage=auto)")
    parser.add_argument("--out", default=RESULTS)
    args = parser.parse_args()
    load_before = os.getloadavg()
    keras.utils.disable_interactive_logging()

    small = args.resolution <= 32
    classes = 10 if small else 1000
    storage = args.storage
    if storage == "auto":
        storage = "reference" if classes >= REFERENCE_FROM_CLASSES else "float16"
    model = create_model(args.model, input_shape=(args.resolution, args.resolution, 3),
                         classes=classes, small_images=small,
                         classifier_activation=None)
    encoded = encoded_images(args.images, args.resolution)
    pixels = decoded(encoded, args.resolution)
    label_fn = make_label_fn(model)
    work = tempfile.mkdtemp(prefix="labeling_bench_")
    try:
        pattern = write_shards(work, encoded, args.shards)

        def run_ours() -> tuple[float, float]:
            out = tempfile.mkdtemp(dir=work)
            start, cpu = time.perf_counter(), time.process_time()
            summary = label_shards(model, pattern, out, image_size=args.resolution,
                                   small_images=small, batch_size=args.batch, label_fn=label_fn,
                                   storage=storage)
            elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
            assert summary["num_labeled"] == args.images
            return args.images / elapsed, cpu / args.images * 1e3

        def run_predict() -> tuple[float, float]:
            start, cpu = time.perf_counter(), time.process_time()
            model.predict(pixels, batch_size=args.batch, verbose=0)
            return (args.images / (time.perf_counter() - start),
                    (time.process_time() - cpu) / args.images * 1e3)

        run_ours(), run_predict()  # warm-up: tracing and first-call costs
        ours, peer = [], []
        for i in range(args.repeats):  # ABBA order: a drifting load favours neither
            if i % 2:
                peer.append(run_predict())
                ours.append(run_ours())
            else:
                ours.append(run_ours())
                peer.append(run_predict())
    finally:
        shutil.rmtree(work, ignore_errors=True)
    ours_cpu = statistics.median(c for _, c in ours)
    peer_cpu = statistics.median(c for _, c in peer)
    ratios = [a / b for (a, _), (b, _) in zip(ours, peer, strict=True)]
    ours, peer = [r for r, _ in ours], [r for r, _ in peer]
    ours_m, peer_m = statistics.median(ours), statistics.median(peer)
    paired = pair_ratio(ours, peer)
    print(f"{args.model} {args.resolution}x{args.resolution}, {args.images} images in "
          f"{args.shards} shards, batch {args.batch}, median of {args.repeats}:")
    print(f"  label_shards (read+decode+teacher+encode+write): {ours_m:8.1f} img/s")
    print(f"  model.predict on pre-decoded arrays:             {peer_m:8.1f} img/s")
    print(f"  ratio label_shards / predict: {ours_m / peer_m:.2f} (median of the pairs' ratios "
          f"{statistics.median(ratios):.2f})")
    if paired["low"] is not None:
        print(f"  pairs' geometric mean ratio {paired['ratio']:.2f}, 95% interval "
              f"[{paired['low']:.2f}, {paired['high']:.2f}]; fastest runs' ratio "
              f"{max(ours) / max(peer):.2f}")
    print(f"  CPU ms per image (this process, all threads): label_shards {ours_cpu:.2f}, "
          f"predict {peer_cpu:.2f}")
    result = {"model": args.model, "resolution": args.resolution, "images": args.images,
              "shards": args.shards, "batch": args.batch, "repeats": args.repeats,
              "storage": storage, "classes": classes,
              "label_shards_images_per_s": ours_m, "predict_images_per_s": peer_m,
              "ratio": ours_m / peer_m, "ratio_median_of_pairs": statistics.median(ratios),
              "ratio_geometric_mean_of_pairs": paired["ratio"],
              "ratio_95_interval": [paired["low"], paired["high"]],
              "ratio_of_fastest_runs": max(ours) / max(peer),
              "label_shards_cpu_ms_per_image": ours_cpu, "predict_cpu_ms_per_image": peer_cpu,
              "label_shards_runs": ours, "predict_runs": peer,
              "command": "python benchmarks/labeling_throughput.py " + " ".join(sys.argv[1:]),
              "commit": provenance.commit(),
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "cpus": os.cpu_count(), "load_average_before": list(load_before),
              "load_average_after": list(os.getloadavg())}
    results = {}
    if os.path.exists(args.out):
        with open(args.out) as f:
            results = json.load(f)
    results[str(args.resolution)] = result
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out + ".tmp", "w") as f:
        json.dump(results, f, indent=1)
    os.replace(args.out + ".tmp", args.out)


if __name__ == "__main__":
    main()
