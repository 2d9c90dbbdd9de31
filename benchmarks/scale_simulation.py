"""Scale simulation of the pseudo-label path at 1,000 classes, on synthetic records in the
package's own format: labeling's write path, the distributed filter with 1, 2 and 4 local
worker processes, and the student's input pipeline; fitted and extrapolated to 300M images.

Per size: unlabeled shards of tiny PNGs (--records_per_shard each); `label_shards` with a
synthetic teacher (a planted class with a random margin, so confidences spread over 0..1) and
reference storage: CPU, wall, bytes; then `filter_and_balance` run by W processes at once
(explicit worker index/count, as TF_CONFIG would give): each reports the CPU, wall and peak RSS
of its own call (TensorFlow's import excluded); then the student's pipeline reads the filtered
references beside their unlabeled files (records/s). The filter's CPU per record is the slope
of a line fitted to the 1-worker CPU over the sizes; 300M records on 100 hosts take
3M records x that slope per host.

    python benchmarks/scale_simulation.py                     # 100K, 1M, 4M records (hours)
    python benchmarks/scale_simulation.py --records 20000     # a smoke run of a minute or two

Results: benchmarks/results/scale_simulation.json (--out).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import numpy as np  # noqa: E402

NUM_CLASSES = 1000
PAPER_RECORDS, PAPER_HOSTS = 300_000_000, 100
RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                       "scale_simulation.json")


def _usage() -> tuple[float, float]:
    """(CPU seconds of this process, its peak RSS in MB). The peak is VmHWM: ru_maxrss would
    carry the parent's peak over into a subprocess (it survives exec)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    with open("/proc/self/status") as f:
        peak_kb = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    return usage.ru_utime + usage.ru_stime, peak_kb / 1024


def _folder_bytes(folder: str, prefix: str) -> int:
    return sum(os.path.getsize(os.path.join(folder, n)) for n in os.listdir(folder)
               if n.startswith(prefix))


def write_sources(folder: str, records: int, per_shard: int) -> str:
    """Unlabeled shards of 8x8 PNGs (16 distinct images, cycled)."""
    import tensorflow as tf
    from PIL import Image

    from noisy_student.data.records import encode_unlabeled

    rng = np.random.default_rng(0)
    images = []
    for _ in range(16):
        buffer = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(buffer, "PNG")
        images.append(encode_unlabeled(buffer.getvalue()))
    shards = -(-records // per_shard)
    for s in range(shards):
        count = min(per_shard, records - s * per_shard)
        with tf.io.TFRecordWriter(os.path.join(folder, f"unlabeled-{s:05d}-of-{shards:05d}")) as w:
            for i in range(count):
                w.write(images[i % 16])
    return os.path.join(folder, "unlabeled-*")


def synthetic_label_fn():
    """Images -> a distribution with a planted class whose logit margin is uniform in 0..12,
    so the top-1 confidence spreads from ~0.001 to ~0.99."""
    import tensorflow as tf

    counter = tf.Variable(0, dtype=tf.int64)

    @tf.function
    def label(images):
        batch = tf.shape(images)[0]
        seed = tf.stack([counter.assign_add(1), tf.constant(7, tf.int64)])
        noise = tf.random.stateless_normal([batch, NUM_CLASSES], seed)
        planted = tf.random.stateless_uniform([batch], seed + 1, 0, NUM_CLASSES, tf.int32)
        margin = tf.random.stateless_uniform([batch], seed + 2, 0.0, 12.0)
        return tf.nn.softmax(noise + tf.one_hot(planted, NUM_CLASSES) * margin[:, None])

    return label


def run_labeling(sources: str, labels: str) -> dict:
    from noisy_student.pseudo_labels.labeling import label_shards

    cpu0, wall0 = _usage()[0], time.perf_counter()
    summary = label_shards(None, sources, labels, image_size=32, small_images=True,
                           batch_size=1024, storage="reference", label_fn=synthetic_label_fn(),
                           worker_index=0, num_workers=1)
    cpu, rss = _usage()
    written = _folder_bytes(labels, "pseudo-")
    return {"cpu_s": cpu - cpu0, "wall_s": time.perf_counter() - wall0, "peak_rss_mb": rss,
            "bytes_written": written, "bytes_per_record": written / summary["num_labeled"]}


def filter_worker(labels: str, out: str, index: int, count: int) -> None:
    """One filter worker (a subprocess): prints the CPU, wall and peak RSS of its own call."""
    from noisy_student.pseudo_labels.filtering import filter_and_balance

    cpu0, wall0 = _usage()[0], time.perf_counter()
    stats = filter_and_balance(os.path.join(labels, "pseudo-*"), out, num_classes=NUM_CLASSES,
                               worker_index=index, num_workers=count, wait_timeout=24 * 3600,
                               poll_seconds=0.1)
    cpu, rss = _usage()
    print(json.dumps({"cpu_s": cpu - cpu0, "wall_s": time.perf_counter() - wall0,
                      "peak_rss_mb": rss, "num_written": stats["num_written"],
                      "passes": stats["passes_over_records"]}))


def run_filter(labels: str, out: str, workers: int) -> dict:
    command = [sys.executable, os.path.abspath(__file__), "--filter_worker", labels, out]
    procs = [subprocess.Popen([*command, str(i), str(workers)], stdout=subprocess.PIPE,
                              text=True) for i in range(workers)]
    results = []
    for proc in procs:
        stdout, _ = proc.communicate()
        if proc.returncode:
            raise RuntimeError(f"filter worker exited with {proc.returncode}")
        results.append(json.loads(stdout.strip().splitlines()[-1]))
    return {"workers": workers, "cpu_s": sum(r["cpu_s"] for r in results),
            "wall_s": max(r["wall_s"] for r in results),
            "peak_rss_mb": max(r["peak_rss_mb"] for r in results),
            "bytes_written": _folder_bytes(out, "train-"), "num_written": results[0]["num_written"],
            "passes_over_records": results[0]["passes"]}


def run_student_input(filtered: str, sources: str, batches: int) -> dict:
    from noisy_student.data.pipelines import pseudo_labeled_dataset

    dataset = pseudo_labeled_dataset(os.path.join(filtered, "train-*"), image_size=32,
                                     batch_size=256, training=True, num_classes=NUM_CLASSES,
                                     small_images=True, source_data=sources, seed=0,
                                     shuffle_buffer=16384)
    iterator = iter(dataset)
    next(iterator)  # tracing and the first fill of the shuffle buffer
    wall0 = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return {"records_per_s": batches * 256 / (time.perf_counter() - wall0)}


def simulate(records: int, workers: list[int], per_shard: int, batches: int) -> dict:
    root = tempfile.mkdtemp(prefix="scale_sim_")
    try:
        for name in ("src", "labels"):
            os.makedirs(os.path.join(root, name))
        sources = write_sources(os.path.join(root, "src"), records, per_shard)
        result = {"records": records, "files": -(-records // per_shard),
                  "labeling": run_labeling(sources, os.path.join(root, "labels")),
                  "filter": [run_filter(os.path.join(root, "labels"),
                                        os.path.join(root, f"filtered{w}"), w) for w in workers]}
        result["student_input"] = run_student_input(
            os.path.join(root, f"filtered{workers[0]}"), sources, batches)
        return result
    finally:
        shutil.rmtree(root)


def summarize(runs: list[dict], workers: list[int]) -> dict:
    """The issue's figures: filter CPU per record (line fitted over the sizes, 1 worker), its
    4-worker speedup (largest size), and 300M records on 100 hosts."""
    from noisy_student.cli.measure_record_sizes import measure

    sizes = np.array([r["records"] for r in runs], dtype=np.float64)
    one = np.array([r["filter"][0]["cpu_s"] for r in runs])
    slope = (np.polyfit(sizes, one, 1)[0] if len(runs) > 1 else one[0] / sizes[0])
    largest = runs[-1]["filter"]
    wall = {f["workers"]: f["wall_s"] for f in largest}
    per_host = PAPER_RECORDS / PAPER_HOSTS
    return {
        "records": [r["records"] for r in runs], "workers": workers,
        "bytes_per_pseudo_label_record": measure(NUM_CLASSES, "reference"),
        "bytes_per_pseudo_label_record_in_file": runs[-1]["labeling"]["bytes_per_record"],
        "filter_passes_over_records": largest[0]["passes_over_records"],
        "filter_cpu_us_per_record": slope * 1e6,
        "filter_speedup_4_workers": wall[1] / wall[4] if {1, 4} <= set(wall) else None,
        "extrapolated_filter_hours_300M_100_hosts": per_host * slope / 3600,
        "peak_rss_mb": max(f["peak_rss_mb"] for r in runs for f in r["filter"]),
        "runs": runs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", default="100000,1000000,4000000")
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--records_per_shard", type=int, default=5000)
    parser.add_argument("--student_batches", type=int, default=50)
    parser.add_argument("--out", default=RESULTS)
    parser.add_argument("--filter_worker", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.filter_worker:
        labels, out, index, count = args.filter_worker
        filter_worker(labels, out, int(index), int(count))
        return
    workers = [int(w) for w in args.workers.split(",")]
    runs = [simulate(int(n), workers, args.records_per_shard, args.student_batches)
            for n in args.records.split(",")]
    summary = summarize(runs, workers)
    summary.update(command=" ".join(sys.argv), date=time.strftime("%Y-%m-%d %H:%M"),
                   load_average=os.getloadavg()[0])
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out + ".tmp", "w") as f:
        json.dump(summary, f, indent=1)
    os.replace(args.out + ".tmp", args.out)
    print(json.dumps({k: v for k, v in summary.items() if k != "runs"}, indent=1))


if __name__ == "__main__":
    main()
