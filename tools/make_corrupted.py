"""``python -m tools.make_corrupted`` from a checkout.

Runs ``noisy_student.cli.make_corrupted`` (installed as ``noisy-student-make-corrupted``).
"""

from noisy_student.cli.make_corrupted import run

if __name__ == "__main__":
    run()
