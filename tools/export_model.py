"""``python -m tools.export_model`` from a checkout.

Runs ``noisy_student.cli.export_model`` (installed as ``noisy-student-export-model``).
"""

from noisy_student.cli.export_model import run

if __name__ == "__main__":
    run()
