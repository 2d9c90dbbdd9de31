"""Evaluation of trained models: the metrics (top-k accuracy, ImageNet-C mCE, ImageNet-P flip
rate; ``metrics``), the labeled sources benchmarks come from (``sources``), loading a run's
models and scoring them on clean, subset, corrupted and perturbed data (``robustness``),
making corrupted copies (``corruptions``) and class activation maps (``cam``). May import the
top-level modules, ``data``, ``run`` and ``training``; nothing above (not ``pseudo_labels``)."""
