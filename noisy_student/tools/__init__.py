"""Command-line tools of ``noisy_student``, installed as ``noisy-student-*`` console scripts
(see setup.py) and runnable from a checkout as ``python -m tools.X``."""
