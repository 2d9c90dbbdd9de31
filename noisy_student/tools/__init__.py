"""The command-line tools, installed as console scripts (``noisy-student-*``; the two that only
need efficientnet_tf as ``efficientnet-*``, see setup.py) and runnable from a checkout as
``python -m tools.X``. They live here, not in efficientnet_tf, which stays a Keras-only
library without absl."""
