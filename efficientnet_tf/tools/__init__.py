"""Command-line tools of ``efficientnet_tf`` (console scripts ``efficientnet-convert-weights``
and ``efficientnet-count-flops``) and the absl runner every command line of the project uses."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence


def show_flags_in_help(module: str) -> None:
    """Makes ``--help`` list the flags defined in ``module``.

    absl's ``--help`` shows the key flags of the module named by ``sys.argv[0]``: the console
    script or the ``tools/X.py`` wrapper, not the module where a tool defines its flags.
    """
    from absl import flags

    for flag in flags.FLAGS.get_key_flags_for_module(module):
        flags.FLAGS.register_key_flag_for_module(sys.argv[0], flag)


def run_tool(
    module: str,
    define_flags: Callable[[], None] | None,
    main: Callable[[list[str]], None],
    flags_parser: Callable[[Sequence[str]], list[str]] | None = None,
) -> None:
    """Defines a tool's flags and runs ``main`` with absl; ``--help`` lists the flags and shows
    ``module``'s docstring as the usage text, whatever starts the tool."""
    from absl import app

    sys.modules["__main__"].__doc__ = sys.modules[module].__doc__
    if define_flags is not None:
        define_flags()
    show_flags_in_help(module)
    if flags_parser is None:
        app.run(main)
    else:
        app.run(main, flags_parser=flags_parser)
