"""What an installed package holds and finds: the bundled flagfiles and demo sample from any
folder (noisy_student.assets), and the built wheel (console scripts, package data, no
top-level ``tools`` package)."""

import fnmatch
import glob
import os
import re
import shutil
import subprocess
import sys
import zipfile

import pytest
from absl import flags

from noisy_student import assets

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAINTAINER_TOOLS = {"build_demo_data"}  # tools/ wrappers with no console script, on purpose


# ---- noisy_student.assets: bundled files by name, from any folder ----


def test_bundled_paths_are_found_from_another_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert assets.resolve("configs/demo.cfg") == os.path.join(assets.ROOT, "configs", "demo.cfg")
    assert os.path.isfile(assets.resolve("configs/demo.cfg"))
    assert len(glob.glob(assets.resolve("sample_data/cifar10/train-*"))) == 4
    assert assets.config_path("svhn") == assets.resolve("configs/svhn.cfg")
    with pytest.raises(FileNotFoundError, match="demo"):  # the message lists the real names
        assets.config_path("no_such_recipe")


def test_local_files_win_and_other_paths_stay(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    local = tmp_path / "sample_data" / "cifar10"
    local.mkdir(parents=True)
    (local / "train-00000-of-00001").write_bytes(b"")
    for path in [
        "sample_data/cifar10/train-*",  # something is there: the user's own files win
        "sample_data/new_run",  # matches nothing anywhere: an output path stays
        "sample_data/cifar10",  # a folder: never redirected into the package
        os.path.join(assets.ROOT, "configs", "x.cfg"),
        "/data/configs/demo.cfg",
        "tfds:cifar10@test",
        "runs/demo",
        "",
    ]:
        assert assets.resolve(path) == path


def test_flagfile_arguments_are_resolved(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    demo, svhn = assets.config_path("demo"), assets.config_path("svhn")
    argv = ["prog", "--flagfile=configs/demo.cfg", "-flagfile", "configs/svhn.cfg",
            "--run_dir=configs/demo.cfg"]
    assert assets.resolve_flagfiles(argv) == [
        "prog", f"--flagfile={demo}", "-flagfile", svhn, "--run_dir=configs/demo.cfg"]


def test_demo_command_line_is_valid_from_another_folder(tmp_path, monkeypatch):
    """The demo's flags (bundled demo.cfg, data patterns sample_data/cifar10/...) pass the
    up-front validation, which checks that every data pattern matches files."""
    from noisy_student.cli import demo, runner
    from noisy_student.cli import flags as cli_flags

    monkeypatch.chdir(tmp_path)
    saved = flags.FLAGS.flag_values_dict()
    try:
        runner.parse_flags(demo.demo_argv(["noisy-student-demo", "--run_dir=here"]))
        cli_flags.validate()
        values = {name: flags.FLAGS[name].value
                  for name in ("label_data", "unlabel_data", "eval_data", "run_dir")}
    finally:
        for name, value in saved.items():
            flags.FLAGS[name].value = value
    assert values["run_dir"] == "here"  # the command line overrides the flagfile
    counts = {name: len(glob.glob(values[name])) for name in values if name != "run_dir"}
    assert counts == {"label_data": 4, "unlabel_data": 8, "eval_data": 2}
    assert all(values[name].startswith(assets.ROOT) for name in counts)


def test_demo_time_in_the_flagfile_and_readme_is_builds_latest():
    """demo.cfg's header and the README state the demo's time as BUILD.md's latest measured
    `make demo` (the last row of its "Demo" table, e.g. "3.8 min (3m55s)")."""
    with open(os.path.join(REPO, "BUILD.md"), encoding="utf-8") as f:
        demo = f.read().split("\n## Demo", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in demo.splitlines() if re.match(r"\| \d+ \|", line)]
    latest = re.findall(r"\((\d+m\d\ds)\)", rows[-1])[0]
    with open(assets.config_path("demo"), encoding="utf-8") as f:
        header = "".join(line for line in f if line.startswith("#"))
    with open(os.path.join(REPO, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    assert f"({latest})" in header and f"({latest})" in readme
    assert not re.search(r"\b1[78]\b.{0,3}min", header + readme)  # the 2026-11-30 figure


@pytest.mark.parametrize("entry", [
    "noisy_student.cli.main:run", "noisy_student.cli.demo:run",
    "noisy_student.cli.evaluate:run_cli",
    "noisy_student.cli.cam:run", "noisy_student.cli.count_flops:run",
    "noisy_student.cli.scaling_search:run"])
def test_help_comes_before_tensorflow(entry):
    """A console script's --help (and so any flag error) must not wait for TensorFlow, which
    takes a minute to import on a loaded machine; the flags are listed."""
    module, function = entry.split(":")
    code = (f"import sys\nfrom {module} import {function}\nsys.argv = ['cmd', '--help']\n"
            f"try:\n    {function}()\nexcept SystemExit:\n    pass\n"
            "print('imported:', sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))")
    run = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.splitlines()[-1] == "imported: []"
    assert "  --" in run.stdout  # absl lists flags as "  --name: help"


# ---- setup.py: what it declares ----


@pytest.fixture(scope="module")
def setup_kwargs() -> dict:
    """The keyword arguments setup.py passes to setuptools.setup (nothing is built)."""
    import runpy
    from unittest import mock

    before = os.getcwd()
    os.chdir(REPO)  # setup.py reads README.md from the working directory
    try:
        with mock.patch("setuptools.setup") as setup:
            runpy.run_path(os.path.join(REPO, "setup.py"), run_name="__main__")
    finally:
        os.chdir(before)
    return setup.call_args.kwargs


def test_package_data_lists_every_bundled_file(setup_kwargs):
    """package_data is the only source of data files (include_package_data is off, so that
    setuptools does not take the data folders for undeclared packages and warn "Package would
    be ignored"): every data file in git under the packages must match one of its patterns."""
    assert setup_kwargs["include_package_data"] is False
    data = [path for path in subprocess.run(
        ["git", "ls-files", "efficientnet_tf", "noisy_student"], cwd=REPO, capture_output=True,
        text=True, check=True).stdout.split() if not path.endswith(".py")]
    assert any(path.startswith("noisy_student/assets/configs/") for path in data)
    assert any(path.startswith("noisy_student/assets/sample_data/cifar10/") for path in data)
    patterns = [os.path.join(package.replace(".", "/"), pattern)
                for package, globs in setup_kwargs["package_data"].items() for pattern in globs]
    unlisted = [path for path in data
                if not any(fnmatch.fnmatchcase(path, pattern) for pattern in patterns)]
    assert not unlisted, f"add to setup.py package_data: {unlisted}"


def test_setup_avoids_setuptools_warnings(setup_kwargs):
    """No "License ::" classifier (deprecated by setuptools 77, which warns on each build) and
    a declared top-level package folder (else `pip install -e` warns "Editable installation")."""
    assert not [c for c in setup_kwargs["classifiers"] if c.startswith("License ::")]
    assert setup_kwargs["license"]
    assert setup_kwargs["package_dir"] == {"": "."}


# ---- the wheel ----


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    """The wheel `pip wheel` builds from a copy of the checkout's package sources (built once
    per test run, ~30 s; the copy keeps build/ and *.egg-info out of the checkout)."""
    source = tmp_path_factory.mktemp("source")
    for name in ("setup.py", "pyproject.toml", "README.md"):
        shutil.copy(os.path.join(REPO, name), source)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for folder in ("efficientnet_tf", "noisy_student", "tools"):
        shutil.copytree(os.path.join(REPO, folder), source / folder, ignore=ignore)
    out = tmp_path_factory.mktemp("wheel")
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
         "-q", "-w", str(out), str(source)],
        capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stderr[-3000:]
    (path,) = glob.glob(str(out / "*.whl"))
    with zipfile.ZipFile(path) as archive:
        yield archive


def _dist_info(archive: zipfile.ZipFile, name: str) -> str:
    (member,) = [n for n in archive.namelist() if re.fullmatch(rf"[^/]+\.dist-info/{name}", n)]
    return archive.read(member).decode()


def _console_scripts(archive: zipfile.ZipFile) -> dict[str, str]:
    text = _dist_info(archive, "entry_points.txt").split("[console_scripts]", 1)[1]
    scripts = {}
    for line in text.splitlines():
        if line.startswith("["):
            break
        if "=" in line:
            name, target = (part.strip() for part in line.split("=", 1))
            scripts[name] = target
    return scripts


def test_wheel_has_only_our_packages(wheel):
    names = wheel.namelist()
    assert set(_dist_info(wheel, "top_level.txt").split()) == {"efficientnet_tf", "noisy_student"}
    assert {n.split("/")[0] for n in names if "dist-info" not in n} == {
        "efficientnet_tf", "noisy_student"}
    assert "noisy_student/cli/build_tfrecords.py" in names
    assert "noisy_student/cli/convert_weights.py" in names
    assert not any(n.startswith("efficientnet_tf/tools/") for n in names)


def test_wheel_ships_the_flagfiles_and_the_demo_sample(wheel):
    sizes = {info.filename: info.file_size for info in wheel.infolist()}
    for folder in (assets.CONFIGS_DIR, assets.SAMPLE_DIR):
        files = sorted(os.listdir(folder))
        assert files
        top = os.path.dirname(os.path.dirname(assets.ROOT))  # the folder holding noisy_student/
        inside = os.path.relpath(folder, top).replace(os.sep, "/")  # noisy_student/assets/...
        for name in files:
            assert sizes.get(f"{inside}/{name}") == os.path.getsize(os.path.join(folder, name))
    assert "noisy_student/data/imagenet_classes.txt" in sizes


def test_every_tool_is_a_console_script(wheel):
    """Each console script names a function that exists, and every tools/X.py wrapper runs one
    of them (except the maintainer tools)."""
    import importlib

    scripts = _console_scripts(wheel)
    assert {"noisy-student", "noisy-student-demo", "noisy-student-eval",
            "efficientnet-convert-weights", "efficientnet-count-flops"} <= set(scripts)
    for target in scripts.values():
        module, function = target.split(":")
        assert f"{module.replace('.', '/')}.py" in wheel.namelist(), target
        assert callable(getattr(importlib.import_module(module), function)), target
    wrapped = {}
    for path in glob.glob(os.path.join(REPO, "tools", "*.py")):
        stem = os.path.basename(path)[:-3]
        if stem != "__init__":
            with open(path) as f:
                (module,) = re.findall(r"^from ([\w.]+) import run$", f.read(), re.M)
            wrapped[stem] = f"{module}:run"
    assert wrapped
    assert {t for s, t in wrapped.items() if s not in MAINTAINER_TOOLS} <= set(scripts.values())
