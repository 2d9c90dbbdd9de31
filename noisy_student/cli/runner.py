"""The absl runner of every command line of the project (``noisy-student*``,
``efficientnet-*``, ``python -m tools.X``), and their one rule for errors: a usage error (an
unknown flag, a bad value on the command line or in a flagfile, a missing or inconsistent flag)
and an expected failure after validation both print one line ``PROGRAM: error: ...`` and exit
with status 2 (``--traceback`` shows the stack of the latter). A usage error names the flag and,
when a flagfile gave it, the file and line. Imports absl only (the error helpers use
TensorFlow only once a command has loaded it), so ``--help`` and flag errors come before
TensorFlow is loaded."""

from __future__ import annotations

import functools
import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import NoReturn, TypeVar

T = TypeVar("T")

TRACEBACK_HELP = ("Show the Python stack of an error after validation (default: one line and "
                  "exit status 2).")
VERBOSE_HELP = ("Also print TensorFlow's C++ logs and every INFO log (default: stage lines, "
                "notes, progress bars, warnings and results; noisy_student.console).")


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
    program: str,
    also: tuple[type[BaseException], ...] = (),
) -> None:
    """Defines a tool's flags and runs ``main`` with absl: ``--help`` lists the flags with
    ``module``'s docstring as the usage text, whatever starts the tool, bundled
    ``configs/``/``sample_data/`` paths are found from any folder (:mod:`noisy_student.assets`)
    and a usage error is one line naming the flag, exit status 2 (:func:`run_program`); ``also``:
    more failures reported in one line (e.g. ImportError for a missing optional package)."""
    sys.modules["__main__"].__doc__ = sys.modules[module].__doc__
    define_flags()
    show_flags_in_help(module)
    run_program(program, main, also=also)


def run_program(program: str, main: Callable[[list[str]], None],
                argv: Sequence[str] | None = None,
                also: tuple[type[BaseException], ...] = ()) -> None:
    """``absl.app.run(main)`` with our flag parser (:func:`parse_flags`)
    and usage errors, from parsing or an ``app.UsageError`` raised by ``main``, reported by
    :func:`usage_error` (absl's own way prints the whole help and exits with status 1). An
    expected failure that ``main`` lets through is reported by :func:`run_or_exit`, with its
    stack when the command defines ``--traceback`` and it is given (``also``: see run_or_exit)."""
    from absl import app, flags

    @functools.wraps(main)
    def checked_main(args: list[str]) -> None:
        try:
            run_or_exit(program, lambda: main(args), also=also,
                        traceback="traceback" in flags.FLAGS and flags.FLAGS.traceback)
        except app.UsageError as err:
            usage_error(program, str(err))

    app.run(checked_main, argv=None if argv is None else list(argv),
            flags_parser=functools.partial(parse_flags, program=program))


def parse_flags(argv: Sequence[str], program: str | None = None) -> list[str]:
    """absl ``flags_parser`` of our command lines: ``assets.resolve_flagfiles``, absl's parsing
    (``--help`` as usual), then ``assets.resolve_flag_values`` (bundled files by name). A usage
    error prints one line ``PROGRAM: error: ...`` naming the flag, and the flagfile and line
    that gave it, and exits with status 2 (:func:`usage_error`); ``program`` defaults to the
    name of ``argv[0]``."""
    from absl import flags

    from noisy_student import assets

    argv = assets.resolve_flagfiles(argv)
    remember_command_line(argv)
    try:
        remaining = flags.FLAGS(argv)
    except flags.Error as err:
        usage_error(program or os.path.basename(argv[0]), flag_error_message(err))
    assets.resolve_flag_values(flags.FLAGS)
    return remaining


_command_line: list[str] = []  # the arguments parse_flags saw last, for flag_origin


def remember_command_line(argv: Sequence[str]) -> None:
    """Keeps the arguments being parsed, so a later usage error can say which flagfile line
    gave the flag it names."""
    _command_line[:] = argv


def usage_error(program: str, message: str) -> NoReturn:
    """Prints ``PROGRAM: error: MESSAGE`` on one line, followed by the flagfile and line that
    gave the first flag the message names (when a flagfile gave it), and exits with status 2.
    """
    text = " ".join(message.split())
    origin = flag_origin(_command_line, text)
    print(f"{program}: error: {text}{f' ({origin})' if origin else ''}", file=sys.stderr)
    sys.exit(2)


def flag_error_message(error: Exception) -> str:
    """One line for an absl flag parsing error; an unknown flag is quoted as it was given."""
    suggestion = re.search(r"Did you mean: (.*?) \?", str(error))
    if getattr(error, "flagvalue", None):  # absl's UnrecognizedFlagError
        hint = f" (did you mean --{suggestion.group(1).strip()}?)" if suggestion else ""
        return f"unknown flag {error.flagvalue}{hint}; --helpfull lists every flag"
    text = " ".join(str(error).split())
    text = text.replace("ERROR:: Unable to open flagfile:", "--flagfile: cannot open it:")
    return re.sub(r"^flag (-)", r"\1", text)


def flag_origin(argv: Sequence[str], message: str) -> str:
    """``flagfile PATH, line N`` of the flag that ``message`` names first (its argument as the
    message quotes it, else the last one, whose value is in effect), or "" when it came from
    the command line or is not found."""
    named = re.search(r"(?<![\w-])--?([A-Za-z_][\w.-]*)", message)
    if not named:
        return ""
    name = named.group(1)
    given = [(arg, path, line) for arg, path, line in command_line_arguments(argv[1:])
             if arg.startswith("-") and name in _spellings(arg.lstrip("-").partition("=")[0])]
    quoted = [found for found in given
              if re.search(re.escape("--" + found[0].lstrip("-")) + r"(?![^\s:',;)])", message)]
    if not given:
        return ""
    _, path, line = quoted[0] if quoted else given[-1]
    return f"flagfile {path}, line {line}" if path else ""


def _spellings(name: str) -> tuple[str, ...]:
    """A flag's name as messages may write it: itself, and ``noX``/``X`` for a boolean."""
    return (name, f"no{name}", name[2:]) if name.startswith("no") else (name, f"no{name}")


def command_line_arguments(argv: Sequence[str],
                           within: tuple[str, ...] = ()) -> Iterator[tuple[str, str | None, int]]:
    """(argument, flagfile, line) of each argument absl reads from ``argv``, flagfiles expanded
    as absl expands them (comments, blank lines and nested ``--flagfile=`` lines); flagfile and
    line are None and 0 for the command line's own arguments."""
    args = iter(argv)
    for arg in args:
        if arg in ("--flagfile", "-flagfile"):
            yield from _flagfile_arguments(next(args, ""), within)
        elif arg.startswith(("--flagfile=", "-flagfile=")):
            yield from _flagfile_arguments(arg.partition("=")[2], within)
        else:
            yield arg, None, 0


def _flagfile_arguments(path: str, within: tuple[str, ...]
                        ) -> Iterator[tuple[str, str | None, int]]:
    path = os.path.expanduser(path.strip())
    if not path or path in within:
        return
    try:
        with open(path) as file:
            lines = file.readlines()
    except OSError:
        return
    for number, line in enumerate(lines, 1):
        if line.isspace() or line.startswith(("#", "//")):
            continue
        if line.startswith(("--flagfile=", "-flagfile=")):
            yield from _flagfile_arguments(line.partition("=")[2], (*within, path))
        else:
            yield line.strip(), path, number


def expected_errors() -> tuple[type[BaseException], ...]:
    """Failures a command can meet after validation (missing inputs, changed settings, a locked
    run directory, a full disk, bad data, a diverged loss): reported in one line, not a
    traceback. Anything else (TypeError, KeyError, ...) is a bug and keeps its traceback.
    TensorFlow's errors count once it is loaded (before, none can be raised), so an exit before
    then, a usage error, does not load it."""
    return (OSError, ValueError, RuntimeError, FloatingPointError, *_op_error())


def _op_error() -> tuple[type[BaseException], ...]:
    """(tf.errors.OpError,) when TensorFlow is loaded, else ()."""
    tf = sys.modules.get("tensorflow")
    errors = getattr(tf, "errors", None)
    return (errors.OpError,) if errors is not None else ()


def one_line(error: BaseException) -> str:
    """The error's message on one line, without TensorFlow's graph-node decorations."""
    text = error.message if isinstance(error, _op_error()) else str(error)
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
