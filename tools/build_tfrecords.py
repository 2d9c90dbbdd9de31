"""``python -m tools.build_tfrecords`` from a checkout.

Runs ``noisy_student.tools.build_tfrecords`` (installed as ``noisy-student-build-tfrecords``).
"""

from noisy_student.tools.build_tfrecords import run

if __name__ == "__main__":
    run()
