"""``python -m tools.convert_weights`` from a checkout.

Runs ``efficientnet_tf.tools.convert_weights`` (installed as ``efficientnet-convert-weights``).
"""

from efficientnet_tf.tools.convert_weights import run

if __name__ == "__main__":
    run()
