"""The absl runner of every command line of the project (``noisy-student*``,
``efficientnet-*``, ``python -m tools.X``). Imports absl only, so ``--help`` and flag errors
come before TensorFlow is loaded."""

from __future__ import annotations

import sys
from collections.abc import Callable


def show_flags_in_help(module: str) -> None:
    """Makes ``--help`` list the flags defined in ``module``.

    absl's ``--help`` shows the key flags of the module named by ``sys.argv[0]``: the console
    script or the ``tools/X.py`` wrapper, not the module where a command defines its flags.
    """
    from absl import flags

    for flag in flags.FLAGS.get_key_flags_for_module(module):
        flags.FLAGS.register_key_flag_for_module(sys.argv[0], flag)


def run_tool(
    module: str,
    define_flags: Callable[[], None],
    main: Callable[[list[str]], None],
) -> None:
    """Defines a tool's flags and runs ``main`` with absl: ``--help`` lists the flags with
    ``module``'s docstring as the usage text, whatever starts the tool, and bundled
    ``configs/``/``sample_data/`` paths are found from any folder (:mod:`noisy_student.assets`).
    """
    from absl import app

    from noisy_student import assets

    sys.modules["__main__"].__doc__ = sys.modules[module].__doc__
    define_flags()
    show_flags_in_help(module)
    app.run(main, flags_parser=assets.parse_flags)
