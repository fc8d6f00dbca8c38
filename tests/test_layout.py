"""The package's shape: its modules import each other without a circle (counting the imports made
inside functions, which only hide one), each layer imports only the layers below it (the layers of
`sgi2v_lite/__init__.py`'s docstring), and no module outside the sampler steps the scheduler."""

import ast
from pathlib import Path

from conftest import ROOT

PACKAGE = ROOT / "sgi2v_lite"
# the layers, lowest first, as `sgi2v_lite/__init__.py` describes them
LAYERS = {
    "method": {"errors", "config", "tracks", "attention", "loss", "frequency"},
    "sampler": {"memory", "sampler"},
    "models": {"models"},
    "tools": {
        "probe",
        "video",
        "viz",
        "exercises",
        "examples",
        "toy",
        "toy.world",
        "toy.train",
        "toy.card",
        "toy.evaluate",
    },
    "apps": {"cli", "widgets", "explorer", "__main__", ""},
}


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(PACKAGE).with_suffix("").parts).removesuffix(".__init__").removesuffix("__init__")


def import_graph() -> dict[str, set[str]]:
    """module -> the package modules it imports, anywhere in its code (relative imports)."""
    modules = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        package = name.split(".")[:-1] if not path.name == "__init__.py" else name.split(".") if name else []
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = package[: len(package) - (node.level - 1)]
                stem = ".".join(base + ([node.module] if node.module else []))
                for alias in node.names:
                    candidate = f"{stem}.{alias.name}" if stem else alias.name
                    targets.add(candidate if candidate in modules else stem)
        graph[name] = {target for target in targets if target in modules and target != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                return stack[stack.index(target) :] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_package_has_no_import_circle():
    graph = import_graph()
    assert {"sampler", "models", "attention", "probe", "toy.train"} <= set(graph)
    assert "attention" in graph["sampler"]  # the graph sees relative imports
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_a_circle_is_found():  # the check itself can fail
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_each_layer_imports_only_the_layers_below_it():
    graph = import_graph()
    level = {module: n for n, modules in enumerate(LAYERS.values()) for module in modules}
    assert set(graph) <= set(level), f"modules in no layer: {set(graph) - set(level)}"
    upward = [(a, b) for a, targets in graph.items() for b in targets if level[b] > level[a]]
    assert not upward, f"imports from a higher layer: {upward}"


def test_only_the_sampler_steps_the_scheduler():
    for path in list(PACKAGE.rglob("*.py")) + list((ROOT / "benchmarks").glob("*.py")):
        if path.name == "sampler.py" or "toy" in path.parts:  # training adds noise by hand, it does not sample
            continue
        assert "scheduler.step(" not in path.read_text(), f"{path.name} steps the scheduler itself"
