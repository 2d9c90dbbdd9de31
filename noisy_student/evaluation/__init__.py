"""Evaluation of trained models: the metrics (top-k by the true class's rank, ImageNet-C mCE,
ImageNet-P flip rate; ``metrics``), the labeled sources benchmarks read (``sources``), loading
the model to score (``loading``: a ``.keras`` file, a model folder or a run directory), clean
accuracy with per-class results and ImageNet-A/R (``classification``), ImageNet-C/P and our
corrupted sets (``robustness``), one benchmark as the commands run it (``benchmarks``), making
corrupted copies (``corruptions``) and class activation maps (``cam``). May import the top-level
modules, ``data``, ``run`` and ``training``; nothing above (not ``pseudo_labels``)."""
