"""``python -m tools.count_flops`` from a checkout.

Runs ``efficientnet_tf.tools.count_flops`` (installed as ``efficientnet-count-flops``).
"""

from efficientnet_tf.tools.count_flops import run

if __name__ == "__main__":
    run()
