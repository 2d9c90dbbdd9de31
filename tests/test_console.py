"""The console of the command lines (noisy_student.console): by default TensorFlow's C++ logs
and INFO logs are hidden, the C++ log level being set before TensorFlow loads; --verbose brings
them back; a log level the user set is kept."""

import json
import logging
import os
import subprocess
import sys

from noisy_student import console

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Runs a command line whose validation fails after console.configure (so TensorFlow is loaded),
# recording TF_CPP_MIN_LOG_LEVEL when `import tensorflow` starts, then logs two INFO probes.
PROBE = """
import json, logging, os, sys
seen = []
class Spy:
    def find_spec(self, name, path=None, target=None):
        if name == "tensorflow" and not seen:
            seen.append(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "unset"))
sys.meta_path.insert(0, Spy())
from {module} import run
sys.argv = ["cmd", *json.loads(sys.argv[1])]
try:
    run()
except SystemExit:
    pass
from absl import logging as absl_logging
absl_logging.info("absl-info-probe")
logging.getLogger("tensorflow").info("tensorflow-info-probe")
print(json.dumps({{"level_at_import": seen, "root": logging.getLogger().level}}))
"""
CPP_LOG_WORDS = ("cuda", "onednn", "e0000", "i0000", "initializelog", "cpu_feature_guard")


def _run(module: str, args: list[str], **env) -> tuple[dict, str]:
    environ = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}  # conftest's
    run = subprocess.run(
        [sys.executable, "-c", PROBE.format(module=module), json.dumps(args)], cwd=REPO,
        env={**environ, **env}, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.splitlines()[-1]), run.stderr


def test_quiet_by_default():
    """Only our error line reaches stderr: no C++ log line of TensorFlow's loading or device
    setup, no INFO log; the C++ level was set before `import tensorflow`."""
    state, stderr = _run("noisy_student.cli.main", ["--mode=eval", "--run_dir=unused"])
    assert state == {"level_at_import": ["3"], "root": logging.WARNING}
    assert not [line for line in stderr.splitlines()
                if any(word in line.lower() for word in CPP_LOG_WORDS)], stderr
    assert stderr.splitlines() == [
        "noisy-student: error: --eval_data is required for --mode=eval."], stderr


def test_verbose_brings_the_logs_back():
    state, stderr = _run("noisy_student.cli.main", ["--mode=eval", "--run_dir=unused", "--verbose"])
    assert state == {"level_at_import": ["unset"], "root": logging.INFO}
    assert "absl-info-probe" in stderr and "tensorflow-info-probe" in stderr


def test_demo_keeps_the_users_level():
    state, stderr = _run("noisy_student.cli.demo", ["--eval_data=/no/such/folder/*"],
                         TF_CPP_MIN_LOG_LEVEL="1")
    assert state == {"level_at_import": ["1"], "root": logging.WARNING}
    assert "noisy-student-demo: error:" in stderr and "absl-info-probe" not in stderr


def test_loading_lines_are_dropped_and_the_rest_kept(capfd):
    with console.dropped_lines(console.LOADING_LOG_LINE):
        for line in [
            "WARNING: All log messages before absl::InitializeLog() is called are written to "
            "STDERR",
            "I0000 00:00:1796596816.165719   30740 cudart_stub.cc:31] Could not find cuda "
            "drivers on your machine, GPU will not be used.",
            "E0000 00:00:1796596819.584338   30740 cuda_platform.cc:52] failed call to cuInit",
            "2025-09-17 14:44:05.157831: I external/local_xla/xla/tsl/cuda/cudart_stub.cc:32] "
            "Could not find cuda drivers on your machine, GPU will not be used.",
            "F0000 00:00:1796596819.584338   30740 some.cc:1] a fatal error stays",
            "Traceback (most recent call last): stays too",
        ]:
            os.write(2, (line + "\n").encode())
    assert capfd.readouterr().err.splitlines() == [
        "F0000 00:00:1796596819.584338   30740 some.cc:1] a fatal error stays",
        "Traceback (most recent call last): stays too"]


def test_console_lines_are_plain_lines_on_the_current_stdout(capsys, monkeypatch):
    """After configure (twice: one handler), a console line is the bare message on whatever
    sys.stdout is at the time (the progress bars' stream), and is not passed on to the root's
    absl handler, which would print it again."""
    from absl import logging as absl_logging

    root, verbosity = logging.getLogger().level, absl_logging.get_verbosity()
    monkeypatch.setattr(console.log, "handlers", list(console.log.handlers))
    monkeypatch.setattr(console.log, "propagate", console.log.propagate)
    try:
        console.configure(verbose=True)  # verbose: leaves TensorFlow's import alone
        console.configure(verbose=True)
        console.log.info("Stage teacher: started.")
    finally:
        logging.getLogger().setLevel(root)
        absl_logging.set_verbosity(verbosity)
    captured = capsys.readouterr()
    assert captured.out == "Stage teacher: started.\n" and captured.err == ""
    assert console.log.propagate is False
