"""``python -m tools.build_tfrecords`` from a checkout.

Runs ``noisy_student.cli.build_tfrecords`` (installed as ``noisy-student-build-tfrecords``).
"""

from noisy_student.cli.build_tfrecords import run

if __name__ == "__main__":
    run()
