"""What a command line prints. By default: one line as each stage starts and ends (with its
figures), notes, progress bars, warnings and the final table. TensorFlow's C++ logs and every
INFO log (ours, absl's, TensorFlow's) are hidden; ``--verbose`` shows them.

Library code writes its console lines to :data:`log` (``noisy_student.console``) at INFO; a
command line that called :func:`configure` prints them as plain lines on stdout, next to the
progress bars, and a library user sees them as INFO records. Imports absl only."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import tempfile
from collections.abc import Iterator

log = logging.getLogger(__name__)

CPP_LOG_LEVEL = "TF_CPP_MIN_LOG_LEVEL"
QUIET_CPP_LOG_LEVEL = "3"  # FATAL only: a failed op still reaches the user as a Python error
# C++ log lines that TensorFlow's libraries print while they load, before the level above
# applies: absl's notice, then its own (I/W/E0000 00:00:...) or TSL's format (date: I file:line]).
LOADING_LOG_LINE = re.compile(
    r"WARNING: All log messages before absl::InitializeLog\(\) is called"
    r"|[IWE]\d{4} \d\d:\d\d:[\d.]+ +\d+ [\w.]+:\d+\]"
    r"|\d{4}-\d\d-\d\d \d\d:\d\d:[\d.]+: [IWE] [\w./-]+:\d+\]")


def configure(verbose: bool) -> None:
    """Sets a command line's console up; call it before anything imports TensorFlow. Quiet:
    TF_CPP_MIN_LOG_LEVEL=3 (unless the user set it), absl and Python logs from WARNING, and
    TensorFlow imported here with its loading lines dropped. Verbose: TensorFlow's own levels,
    logs from INFO."""
    from absl import logging as absl_logging

    if not verbose and "tensorflow" not in sys.modules:
        os.environ.setdefault(CPP_LOG_LEVEL, QUIET_CPP_LOG_LEVEL)
    absl_logging.set_verbosity(absl_logging.INFO if verbose else absl_logging.WARNING)
    logging.getLogger().setLevel(logging.INFO if verbose else logging.WARNING)
    if not any(isinstance(handler, _StdoutLines) for handler in log.handlers):
        log.addHandler(_StdoutLines())
    log.setLevel(logging.INFO)
    log.propagate = False
    if not verbose and "tensorflow" not in sys.modules:
        with dropped_lines(LOADING_LOG_LINE):
            import tensorflow  # noqa: F401 - its libraries log while they load


class _StdoutLines(logging.Handler):
    """Each record's message as a line on the current ``sys.stdout`` (where the progress bars
    and the final table go)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stdout.write(record.getMessage() + "\n")
            sys.stdout.flush()
        except Exception:  # noqa: BLE001 - logging's rule: a failed line never stops the run
            self.handleError(record)


@contextlib.contextmanager
def dropped_lines(pattern: re.Pattern) -> Iterator[None]:
    """Collects what is written to file descriptor 2 (C++ code and Python alike) while the
    block runs, then writes it to stderr without the lines that start with ``pattern``."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            text = captured.read().decode("utf-8", "replace")
            kept = [line for line in text.splitlines(keepends=True) if not pattern.match(line)]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()
