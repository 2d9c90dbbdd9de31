"""Module layout and records: the Keras-free architecture module, no import cycle between the
model and the weights package, the variant a built model records, old spellings as errors,
and noisy_student's subpackages imported only downwards, with short files."""

import ast
import inspect
import pathlib
import subprocess
import sys

import pytest

import efficientnet_tf
from efficientnet_tf import architecture, network
from efficientnet_tf import model as model_module

PACKAGE = pathlib.Path(efficientnet_tf.__file__).parent


def module_imports(path: pathlib.Path) -> tuple[set[str], set[str]]:
    """(modules imported at module level, modules imported inside functions) by a source file."""
    tree = ast.parse(path.read_text())
    top, nested = set(), set()

    def names(node) -> set[str]:
        if isinstance(node, ast.Import):
            return {alias.name for alias in node.names}
        module = node.module or ""
        return {module} | {f"{module}.{alias.name}" for alias in node.names}

    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for inner in ast.walk(node):
                if isinstance(inner, ast.Import | ast.ImportFrom):
                    nested |= names(inner)
    for node in tree.body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            top |= names(node)
    return top, nested


def module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_modules() -> dict[str, pathlib.Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def test_architecture_module_imports_no_keras():
    top, nested = module_imports(PACKAGE / "architecture.py")
    roots = {n.split(".")[0] for n in top | nested}
    assert not roots & {"keras", "tensorflow", "jax", "torch", "numpy"}, roots
    assert not {n for n in top if n.startswith("efficientnet_tf")}


def test_no_import_cycle_and_no_lazy_imports_inside_the_package():
    """Module-level imports between efficientnet_tf modules form no cycle, and no function
    imports another efficientnet_tf module lazily (the old model.py did, to dodge one)."""
    modules = package_modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        top, nested = module_imports(path)
        assert not {n for n in nested if n.startswith("efficientnet_tf")}, (name, nested)
        edges = set()
        for imported in top:
            parts = imported.split(".")
            for end in range(1, len(parts) + 1):
                prefix = ".".join(parts[:end])
                # Importing a.b.c also runs package a.b first, except the importer's own
                # packages, which Python initializes before it: those count only when named.
                implicit = name.startswith(prefix + ".") and prefix not in top
                if prefix in modules and prefix != name and not implicit:
                    edges.add(prefix)
        graph[name] = edges
    assert "efficientnet_tf.weights" in graph["efficientnet_tf.model"]
    assert not any("efficientnet_tf.model" in graph[m] for m in graph if "weights" in m)

    visiting, done = set(), set()

    def visit(node: str, trail: list[str]) -> None:
        if node in done:
            return
        assert node not in visiting, f"import cycle: {' -> '.join(trail + [node])}"
        visiting.add(node)
        for other in graph[node]:
            visit(other, trail + [node])
        visiting.discard(node)
        done.add(node)

    for node in graph:
        visit(node, [])


@pytest.mark.parametrize(
    "first,second",
    [
        ("efficientnet_tf.weights", "efficientnet_tf.model"),
        ("efficientnet_tf.model", "efficientnet_tf.weights"),
    ],
)
def test_weights_and_model_import_in_either_order(first, second):
    code = (
        f"import {first}, {second}; "
        "from efficientnet_tf.weights import load_pretrained, from_tf_checkpoint; "
        "from efficientnet_tf.model import EfficientNet; print('ok')"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=PACKAGE.parent,
        env={"KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith("ok")


def test_public_names_importable():
    """The documented names are listed in `__all__`, and every listed name imports."""
    top_level = [
        "DEFAULT_BLOCKS",
        "PRESETS",
        "BlockArgs",
        "EfficientNet",
        "EfficientNetB0",
        "EfficientNetB7",
        "EfficientNetL2",
        "FusedBatchNormalization",
        "InputNormalization",
        "MBConvBlock",
        "SqueezeExcite",
        "compound_scaling",
        "create_model",
        "decode_block_string",
        "encode_block_string",
        "feature_endpoints",
        "fold_batch_norm",
        "from_keras_applications",
        "from_tf_checkpoint",
        "load_pretrained",
        "model_config",
        "scaled_blocks",
    ]
    weights_names = [
        "KerasSource",
        "Published",
        "cache_dir",
        "fetch",
        "from_keras_applications",
        "from_tf_checkpoint",
        "infer_preset",
        "infer_scope",
        "load_keras_applications_arrays",
        "load_pretrained",
        "load_tf_arrays",
        "published_weights",
        "read_keras_file",
        "resolve_checkpoint",
    ]
    from efficientnet_tf import weights

    assert set(top_level) <= set(efficientnet_tf.__all__)
    assert set(weights_names) <= set(weights.__all__)
    assert all(hasattr(efficientnet_tf, n) for n in efficientnet_tf.__all__)
    assert all(hasattr(weights, n) for n in weights.__all__)


def test_efficientnet_forwards_every_network_argument():
    """`EfficientNet` is `build_network` plus `weights=`."""
    ours = list(inspect.signature(model_module.EfficientNet).parameters)
    graph = list(inspect.signature(network.build_network).parameters)
    assert [p for p in ours if p != "weights"] == graph


def test_architecture_record_and_preset_matching():
    b3 = architecture.Architecture.of(1.2, 1.4, 300)
    assert b3.preset == "efficientnet-b3"
    assert architecture.Architecture.from_config(b3.to_config()) == b3
    assert architecture.Architecture.of(1.2, 1.4, 300, depth_divisor=4).preset is None
    assert architecture.Architecture.of(1.001, 1.0, 224).preset is None
    assert architecture.matching_preset(4.3, 5.3) == "efficientnet-l2"
    custom = list(architecture.DEFAULT_BLOCKS[:-1])
    assert architecture.matching_preset(1.0, 1.0, custom) is None


def test_model_records_its_variant(keras):
    b3 = efficientnet_tf.create_model("b3", input_shape=(32, 32, 3), include_top=False)
    assert efficientnet_tf.architecture_of(b3).preset == "efficientnet-b3"
    assert b3.get_config()["architecture"]["preset"] == "efficientnet-b3"
    assert b3.get_config()["architecture"]["width_coefficient"] == 1.2
    tiny = efficientnet_tf.create_model(
        "b0", width_coefficient=0.25, depth_coefficient=0.25, input_shape=(32, 32, 3)
    )
    record = efficientnet_tf.architecture_of(tiny)
    assert (record.preset, record.width_coefficient, record.depth_coefficient) == (
        None,
        0.25,
        0.25,
    )
    phi = efficientnet_tf.create_model(phi=0, input_shape=(32, 32, 3), include_top=False)
    assert efficientnet_tf.architecture_of(phi).preset == "efficientnet-b0"


def test_old_spellings_are_errors_that_name_them(keras):
    """Renamed keywords were removed (0.x, no release): an old spelling that a catch-all
    argument would take fails and names itself instead of meaning something else."""
    with pytest.raises(TypeError, match="'name' [(]the variant is variant=[)]"):
        efficientnet_tf.create_model(name="b1")
    with pytest.raises(TypeError, match="'drop_connect_rate'"):
        efficientnet_tf.create_model("b0", drop_connect_rate=0.4)
    with pytest.raises(ValueError, match="drop_rate"):
        efficientnet_tf.MBConvBlock(16, 16, drop_rate=0.3)


# ---- noisy_student: subpackages by job, imported only downwards ----

NOISY_STUDENT = PACKAGE.parent / "noisy_student"
# Lowest first. A module may import its own package and any listed before it; the top-level
# modules (atomic_io, config, console, plots, targets) and assets are the shared ground.
NOISY_STUDENT_LAYERS = ["", "assets", "data", "run", "training", "pseudo_labels", "evaluation",
                        "export", "reporting", "pipeline", "analysis", "cli"]
MAX_TOP_LEVEL_MODULES = 8
MAX_LINES = 500


def noisy_student_upward_imports(root: pathlib.Path = NOISY_STUDENT) -> list[str]:
    """Every import, at module level or inside a function, of a noisy_student package by a
    module in a lower layer, or between two packages of one layer, as "importer -> imported"."""

    def package(module: str) -> str:  # "" for the top-level modules
        parts = module.split(".")
        return parts[1] if len(parts) > 1 and (root / parts[1]).is_dir() else ""

    found = []
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        top, nested = module_imports(path)
        for imported in top | nested:
            if not imported.startswith("noisy_student.") or package(imported) == package(name):
                continue
            mine = NOISY_STUDENT_LAYERS.index(package(name))
            theirs = NOISY_STUDENT_LAYERS.index(package(imported))
            if theirs >= mine and theirs > 0:
                found.append(f"{name} -> {imported}")
    return sorted(found)


def test_noisy_student_packages_import_only_downwards():
    """The tree reads as the pipeline (teacher -> label -> filter -> student -> evaluate ->
    export): no package imports one after it in NOISY_STUDENT_LAYERS, lazily or not, and the
    package docstring lists the same order."""
    assert noisy_student_upward_imports() == []
    packages = {p.name for p in NOISY_STUDENT.iterdir() if (p / "__init__.py").is_file()}
    assert packages == set(NOISY_STUDENT_LAYERS[1:])
    import noisy_student

    listed = [line.split()[0].rstrip("/") for line in noisy_student.__doc__.splitlines()
              if line.startswith("    ") and line.split()[0].endswith("/")]
    assert listed == NOISY_STUDENT_LAYERS[1:], listed
    for package in packages:
        doc = (NOISY_STUDENT / package / "__init__.py").read_text()
        assert doc.startswith('"""') and len(doc.split('"""')[1]) > 100, package


def test_layer_check_finds_an_upward_import(tmp_path):
    """The check above can fail: a data module importing the pipeline is reported."""
    fake = tmp_path / "noisy_student"
    (fake / "data").mkdir(parents=True)
    (fake / "pipeline").mkdir()
    (fake / "data" / "x.py").write_text("def f():\n    from noisy_student.pipeline import loop\n")
    (fake / "pipeline" / "y.py").write_text("from noisy_student.data import x\n")
    found = noisy_student_upward_imports(fake)
    assert "noisy_student.data.x -> noisy_student.pipeline.loop" in found
    assert not [line for line in found if line.startswith("noisy_student.pipeline")]
def test_few_top_level_modules_and_no_long_files():
    """At most MAX_TOP_LEVEL_MODULES modules beside the subpackages, and no source file of
    either package over MAX_LINES lines (split by job)."""
    top = [p.name for p in NOISY_STUDENT.glob("*.py") if p.name != "__init__.py"]
    assert len(top) <= MAX_TOP_LEVEL_MODULES, top
    long = {str(p.relative_to(PACKAGE.parent)): n
            for folder in (PACKAGE, NOISY_STUDENT) for p in folder.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, long
