"""``python -m tools.cam`` from a checkout.

Runs ``noisy_student.cli.cam`` (installed as ``noisy-student-cam``).
"""

from noisy_student.cli.cam import run

if __name__ == "__main__":
    run()
