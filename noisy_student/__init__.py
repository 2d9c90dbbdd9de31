"""Noisy Student self-training on TensorFlow 2.

The subpackages follow the pipeline, teacher -> label -> filter -> student -> evaluate ->
export, and each may import only the ones listed before it (``tests/test_architecture.py``
checks this):

    (top level)    atomic_io, config, console, plots, targets: rules every layer shares
    assets/        bundled flagfiles and demo sample
    data/          TFRecord codecs, labels files, RandAugment, the tf.data input pipelines
    run/           the run directory: stage and folder names, manifest, lock, worker shares
    training/      the recipe and the training loop (teachers and students)
    pseudo_labels/ the teacher's labeling pass, confidence filtering and class balancing
    evaluation/    accuracy, robustness benchmarks, corrupted data, class activation maps
    export/        SavedModel, portable Keras, TFLite, ONNX, and the list of artifacts
    reporting/     the run's summary table and report.md
    pipeline/      the stages over one run directory and the loop that runs them in order
    analysis/      experiments built on whole runs (compound-scaling search)
    cli/           the command lines: flags, ``noisy-student``, the demo and every tool
"""
