"""The absl runner of every command line of the project (``noisy-student*``,
``efficientnet-*``, ``python -m tools.X``), and their one rule for errors after validation
(one line and exit status 2, ``--traceback`` for the stack). Imports absl only (TensorFlow
inside the error helpers), so ``--help`` and flag errors come before TensorFlow is loaded."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

TRACEBACK_HELP = ("Show the Python stack of an error after validation (default: one line and "
                  "exit status 2).")


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


def expected_errors() -> tuple[type[BaseException], ...]:
    """Failures a command can meet after validation (missing inputs, changed settings, a locked
    run directory, a full disk, bad data, a diverged loss): reported in one line, not a
    traceback. Anything else (TypeError, KeyError, ...) is a bug and keeps its traceback."""
    import tensorflow as tf

    return (OSError, ValueError, RuntimeError, FloatingPointError, tf.errors.OpError)


def one_line(error: BaseException) -> str:
    """The error's message on one line, without TensorFlow's graph-node decorations."""
    import tensorflow as tf

    text = error.message if isinstance(error, tf.errors.OpError) else str(error)
    text = re.sub(r"\{\{function_node [^}]*\}\}|\[\[\{\{node [^]]*\]\]|\[Op:\w+\]( name:)?",
                  " ", text)
    assertion = re.search(r"assertion failed: \[(.*)\]", text, re.DOTALL)
    if assertion:  # a tf.debugging.Assert in a pipeline: its message is the whole story
        text = assertion.group(1)
    return " ".join(text.split()) or type(error).__name__


def run_or_exit(program: str, fn: Callable[[], T], *, traceback: bool,
                also: tuple[type[BaseException], ...] = ()) -> T:
    """Returns ``fn()``; an expected failure (`expected_errors`, plus ``also``) prints one line
    ``PROGRAM: error: ...`` and exits with status 2, unless ``traceback`` (the ``--traceback``
    flag), which re-raises it with its stack."""
    try:
        return fn()
    except (*expected_errors(), *also) as err:
        if traceback:
            raise
        print(f"{program}: error: {one_line(err)} (--traceback shows the stack)", file=sys.stderr)
        sys.exit(2)
