"""Command-line tools of ``efficientnet_tf`` (console scripts ``efficientnet-convert-weights``
and ``efficientnet-count-flops``) and :func:`run_tool`, the absl runner every tool uses."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence


def run_tool(
    module: str,
    define_flags: Callable[[], None] | None,
    main: Callable[[list[str]], None],
    flags_parser: Callable[[Sequence[str]], list[str]] | None = None,
) -> None:
    """Defines a tool's flags, makes ``--help`` list them and runs ``main`` with absl.

    absl's ``--help`` shows the key flags of the module named by ``sys.argv[0]``, which is the
    console script or ``tools/X.py`` wrapper rather than ``module``, where the flags are
    defined; their flags are registered for ``sys.argv[0]`` too, and ``module``'s docstring
    becomes the usage text.
    """
    from absl import app, flags

    sys.modules["__main__"].__doc__ = sys.modules[module].__doc__
    if define_flags is not None:
        define_flags()
    for flag in flags.FLAGS.get_key_flags_for_module(module):
        flags.FLAGS.register_key_flag_for_module(sys.argv[0], flag)
    if flags_parser is None:
        app.run(main)
    else:
        app.run(main, flags_parser=flags_parser)
