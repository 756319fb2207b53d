"""The package's layers: a bottom layer that models/, data/ and train/ stand on, models/ importable
alone, and no module importing another that imports it back."""

import ast
import subprocess
import sys
from pathlib import Path

import resnet

SRC = Path(resnet.__file__).parent
BOTTOM = {"resnet.errors", "resnet.download", "resnet.cache", "resnet.checkpoint", "resnet.files"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in SRC.rglob("*.py")}


def _imports(module: str) -> set[str]:
    """The resnet modules `module` imports anywhere in its file (function-level imports included)."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            # `from pkg import name`: the submodule pkg.name if there is one, else pkg itself
            found.update(f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names)
    return {m for m in found if m in MODULES and m != module}


GRAPH = {module: _imports(module) for module in MODULES}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan's algorithm)."""
    index, low, stack, cycles = {}, {}, [], []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while not component or component[-1] != v:
                component.append(stack.pop())
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return cycles


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_module_imports_one_that_imports_it_back():
    assert _cycles(GRAPH) == []


def _package(module: str) -> str:
    """resnet.train.trainer -> resnet.train; top-level modules stand for themselves."""
    return ".".join(module.split(".")[:2])


def test_no_package_imports_one_that_imports_it_back():
    # The root package re-exports the API and is left out: importing `resnet` itself (for __version__)
    # is an edge to everything.
    packages: dict[str, set[str]] = {}
    for module, imported in GRAPH.items():
        if module != "resnet":
            edges = packages.setdefault(_package(module), set())
            edges.update(_package(i) for i in imported if i != "resnet" and _package(i) != _package(module))
    assert _cycles(packages) == []


def test_models_stand_on_the_bottom_layer_only():
    models = [m for m in GRAPH if m.startswith("resnet.models")]
    assert {
        f"{m} -> {i}" for m in models for i in GRAPH[m] if not i.startswith("resnet.models") and i not in BOTTOM
    } == set()


def test_the_bottom_layer_stands_on_itself():
    assert {f"{m} -> {i}" for m in BOTTOM for i in GRAPH[m] if i not in BOTTOM} == set()


def test_models_import_and_work_without_data_train_superres_or_analysis(tmp_path):
    # The parent package is stubbed, so only what resnet.models itself pulls in is imported.
    code = f"""
import sys, types
root = types.ModuleType("resnet")
root.__path__ = [{str(SRC)!r}]
sys.modules["resnet"] = root
from resnet.models import create_model, describe
from resnet.checkpoint import save
model = create_model("resnet20")
save({{"model": model.state_dict()}}, {str(tmp_path / "w.pt")!r})
create_model("resnet20", weights={str(tmp_path / "w.pt")!r})
create_model("vdsr"), describe("edsr_baseline")
print(sorted({{m.split(".")[1] for m in sys.modules if m.startswith("resnet.")}}))
"""
    env = {"RESNET_CACHE": str(tmp_path / "cache"), "PYTHONPATH": str(SRC.parent)}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert result.stdout.split() == ["['cache',", "'checkpoint',", "'download',", "'errors',", "'models']"]


def test_importing_resnet_and_plotting_leave_the_users_matplotlib_backend(tmp_path):
    code = f"""
import matplotlib
matplotlib.use("svg")
import resnet
from resnet.plots import confusion_matrix, error_curves
from resnet.superres.plots import psnr_curves
rows = [{{"step": 1, "train_error": 0.5, "test_error": 0.6, "psnr": 30.0, "bicubic_psnr": 29.0}}]
error_curves({{"a": rows}}, {str(tmp_path / "curves.png")!r})
confusion_matrix([[1, 0], [0, 1]], ["x", "y"], {str(tmp_path / "confusion.png")!r})
psnr_curves({{"a": rows}}, {str(tmp_path / "psnr.png")!r})
print(matplotlib.get_backend())
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "svg"
    assert all(
        (tmp_path / name).read_bytes().startswith(b"\x89PNG") for name in ("curves.png", "confusion.png", "psnr.png")
    )
