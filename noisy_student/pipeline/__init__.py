"""The Noisy Student loop over one run directory: ``stages`` holds the ``Context`` and one
function per stage (train a teacher or student, label, filter, evaluate, export), ``loop.Run``
runs one stage or all in order, skipping finished ones and recording each in the manifest.
May import every package below it; not ``analysis`` or ``cli``."""
