"""``python -m tools.scaling_search`` from a checkout.

Runs ``noisy_student.cli.scaling_search`` (installed as ``noisy-student-scaling-search``).
"""

from noisy_student.cli.scaling_search import run

if __name__ == "__main__":
    run()
