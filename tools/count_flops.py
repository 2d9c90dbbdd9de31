"""``python -m tools.count_flops`` from a checkout.

Runs ``noisy_student.cli.count_flops`` (installed as ``efficientnet-count-flops``).
"""

from noisy_student.cli.count_flops import run

if __name__ == "__main__":
    run()
