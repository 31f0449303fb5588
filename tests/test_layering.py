"""Where code lives: the engine reads bottom-up with no import circle, runtime code does not import the
alignment tooling, and the framework-free packages import no framework.

Checked statically (every import statement of every module, also those inside functions), so a circle
fails here even when the import order of a particular program happens to hide it.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

import pytest

REPO = Path(__file__).resolve().parents[1]
ENGINE = REPO / "paddle_models" / "engine"

# The layers of paddle_models/engine/__init__.py: a module may import only modules of a lower layer.
LAYERS: Dict[str, int] = {
    "distributed": 0, "optim": 0, "sampler": 0, "train_log": 0,
    "weights": 1, "scores": 1,
    "evaluator": 2, "factseg_eval": 2, "checkpoint": 2, "builder": 2,
    "tasks": 3,
    "run_config": 4,
    "trainer": 5, "export": 5,
    "backends": 6,
    "cli": 7, "evaluate": 7, "predict": 7, "infer": 7,
    "deploy": 8,
}
# Optional dependencies may be imported where they are used (the feature works without them installed).
OPTIONAL = {"visualdl", "torch", "onnxruntime", "openvino", "paddle2onnx", "onnx"}


def _imports(path: Path) -> Iterator[Tuple[ast.AST, str, bool]]:
    """(node, absolute module name, inside a function) for every import in the file."""
    tree = ast.parse(path.read_text(), str(path))
    package = ".".join(path.relative_to(REPO).with_suffix("").parts[:-1])
    if path.name == "__init__.py":
        package = ".".join(path.relative_to(REPO).parts[:-1])

    def visit(node: ast.AST, in_function: bool) -> Iterator[Tuple[ast.AST, str, bool]]:
        for child in ast.iter_child_nodes(node):
            inside = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            if isinstance(child, ast.Import):
                for alias in child.names:
                    yield child, alias.name, in_function
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split(".")
                    base = base[: len(base) - child.level + 1]
                    module = ".".join(base + ([child.module] if child.module else []))
                else:
                    module = child.module or ""
                names = [module + "." + a.name for a in child.names] if not child.module or child.level else []
                for name in names or [module]:
                    yield child, name, in_function
            yield from visit(child, inside)

    yield from visit(tree, False)


def _engine_module(name: str) -> str | None:
    parts = name.split(".")
    if parts[:2] == ["paddle_models", "engine"] and len(parts) > 2:
        return parts[2]
    return None


def test_every_engine_module_has_a_layer():
    modules = {p.stem for p in ENGINE.glob("*.py") if p.stem != "__init__"}
    missing = modules ^ set(LAYERS)
    assert not missing, f"add new engine modules to LAYERS (and to the engine docstring): {missing}"


@pytest.mark.parametrize("module", sorted(LAYERS))
def test_engine_imports_only_lower_layers(module):
    path = ENGINE / f"{module}.py"
    problems: List[str] = []
    for node, name, in_function in _imports(path):
        target = _engine_module(name)
        line = f"{path.relative_to(REPO)}:{node.lineno}"
        if in_function and name.split(".")[0] not in OPTIONAL:
            problems.append(f"{line}: import of {name} inside a function (only optional dependencies may be)")
        if target is not None and target in LAYERS and LAYERS[target] >= LAYERS[module]:
            problems.append(f"{line}: {module} (layer {LAYERS[module]}) imports {target} (layer {LAYERS[target]})")
    assert not problems, "\n".join(problems)


def _python_files(*folders: str) -> List[Path]:
    return sorted(p for folder in folders for p in (REPO / folder).rglob("*.py") if ".venv" not in p.parts)


# tools/readme_tables.py writes the alignment results into the READMEs: reading them is its job
DOCS_TOOLS = {"tools/readme_tables.py"}


def test_runtime_code_does_not_import_the_alignment_tooling():
    bad = [f"{p.relative_to(REPO)}:{node.lineno}: {name}"
           for p in _python_files("paddle_models", "rsrepro", "data", "tools", "benchmarks")
           if str(p.relative_to(REPO)) not in DOCS_TOOLS
           for node, name, _ in _imports(p) if name.split(".")[0] == "alignment"]
    assert not bad, "\n".join(bad)


def test_framework_free_packages_import_no_framework():
    bad = [f"{p.relative_to(REPO)}:{node.lineno}: {name}"
           for p in _python_files("rsrepro", "data")
           for node, name, _ in _imports(p) if name.split(".")[0] in ("paddle", "torch", "paddle_models", "torch_ref")]
    assert not bad, "\n".join(bad)


def test_models_and_layers_do_not_import_the_engine():
    files = [p for p in _python_files("paddle_models") if "engine" not in p.relative_to(REPO).parts]
    bad = [f"{p.relative_to(REPO)}:{node.lineno}: {name}" for p in files
           for node, name, _ in _imports(p) if _engine_module(name) or name == "paddle_models.engine"]
    assert not bad, "\n".join(bad)


def test_the_highest_engine_modules_import_alone_in_a_fresh_interpreter():
    """A fresh process that imports a top-layer module first (its whole import graph) must not fail."""
    top = [m for m, layer in LAYERS.items() if layer >= 5]
    code = "; ".join(f"import paddle_models.engine.{m}" for m in top)
    for module in top:  # each one first, in its own interpreter
        first = f"import paddle_models.engine.{module}; " + code
        result = subprocess.run([sys.executable, "-c", first], cwd="/", capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-2000:]
