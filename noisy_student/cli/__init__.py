"""Every command line: the absl runner all of them share (``runner``: ``--help`` and flag errors
before TensorFlow is imported), the flags several commands share (``flag_groups``: the model, its
data, a corrupted set's baseline), the ``noisy-student`` flags (``flags``) and command (``main``),
the demo (``demo``), ``noisy-student-eval`` (``evaluate``) and one module per other console script
(setup.py). Flags are parsed here and turned into library calls; no other package imports ``cli``.
The checkout's top-level ``tools/X.py`` are two-line wrappers of these."""
