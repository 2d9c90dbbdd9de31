"""``python -m tools.convert_weights`` from a checkout.

Runs ``noisy_student.cli.convert_weights`` (installed as ``efficientnet-convert-weights``).
"""

from noisy_student.cli.convert_weights import run

if __name__ == "__main__":
    run()
