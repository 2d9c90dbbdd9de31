"""``python -m tools.build_demo_data`` from a checkout.

Runs ``noisy_student.cli.build_demo_data`` (a maintainer tool: no console script).
"""

from noisy_student.cli.build_demo_data import run

if __name__ == "__main__":
    run()
