"""``python -m tools.measure_record_sizes`` from a checkout.

Runs ``noisy_student.cli.measure_record_sizes`` (installed as ``noisy-student-record-sizes``).
"""

from noisy_student.cli.measure_record_sizes import run

if __name__ == "__main__":
    run()
