"""The layer rule of the library (CONTRIBUTING.md): every module sits in one area, imports point down, never up,
no two modules import each other (directly or round a circle, counting imports inside functions), no module reaches
into another module's underscore names, no function is over 80 lines and none takes more than 8 parameters. Read from the source with `ast` (the same
reader as `code_version`), so a new module or import that breaks the rule fails here."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from rerank_lib.code_version import PACKAGE, imported_modules, imports_in

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = ROOT / PACKAGE

#: the areas, floor by floor, keyed by the top-level name under rerank_lib/ (a module or a package: `models.py` and
#: a `models/` package are the same area; "" is the package's own __init__)
GROUND = {"", "data", "models", "standin", "settings", "paper_profiles", "first_stage", "evaluation", "results",
          "collate", "atomic", "paths", "progress", "code_version"}
PARTS = {"rerankers", "listwise", "retrievers", "losses", "training", "teacher", "synthetic_queries", "negatives",
         "export"}
EXPERIMENT = {"experiment"}
RECIPES = {"recipes"}
COMMANDS = {"cli", "train", "runner", "release", "peer_runs", "__main__"}
AREAS = {"ground": GROUND, "parts": PARTS, "experiment": EXPERIMENT, "recipes": RECIPES, "commands": COMMANDS}
#: (importing area, imported areas it must not import) for each rule
RULES = [
    ({"rerankers", "listwise", "retrievers"}, {"training", "evaluation"}),
    (GROUND, PARTS | EXPERIMENT | RECIPES | COMMANDS),
    (PARTS, EXPERIMENT | RECIPES | COMMANDS),
    (EXPERIMENT, RECIPES | COMMANDS),
    (RECIPES, COMMANDS),
]
MAX_FUNCTION_LINES = 80
MAX_PARAMETERS = 8  # self / cls not counted; *args and **kwargs count (a bag of settings is still settings)
#: constructors that keep a peer package's keyword interface, so that its users' calls run unchanged (the reason)
PEER_INTERFACES = {
    "rerank_lib.rerankers.monot5.T5Ranker.__init__": "the inranker package's T5Ranker(...) keywords",
    "rerank_lib.recipes.inranker.trainer.InRankerTrainer.__init__":
        "the inranker package's InRankerTrainer(...) keywords (peer_runs reads calls written with them)",
}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> list[tuple[str, list[str]]]:
    return imports_in(path, module_name(path))


def area(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


MODULES = {module_name(p): p for p in sorted(LIBRARY.rglob("*.py"))}


def import_circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index, low, stack, on_stack, circles = {}, {}, [], set(), []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, edges = work[-1]
            child = next(edges, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while not component or component[-1] != node:
                    component.append(stack.pop())
                    on_stack.discard(component[-1])
                if len(component) > 1:
                    circles.append(sorted(component))
    return circles


def test_area_and_relative_import_resolution():
    assert area("rerank_lib.rerankers.llm_reranker.ranker") == "rerankers" and area("rerank_lib") == ""
    found = dict(imports(LIBRARY / "rerankers" / "llm_reranker" / "ranker.py"))
    assert "rerank_lib.collate" in found and "rerank_lib.rerankers.llm_reranker.features" in found


def test_areas_do_not_overlap():
    names = [name for members in AREAS.values() for name in members]
    assert len(names) == len(set(names))


def test_every_module_is_in_an_area():
    known = set().union(*AREAS.values())
    assert not sorted(m for m in MODULES if area(m) not in known), "add the module's top-level name to an area"


@pytest.mark.parametrize("importer, forbidden", RULES, ids=lambda v: "+".join(sorted(v))[:40])
def test_imports_point_down(importer, forbidden):
    broken = [(module, target) for module, path in MODULES.items() if area(module) in importer
              for target, _ in imports(path) if area(target) in forbidden]
    assert not broken


def test_a_loss_imports_only_torch_and_other_losses():
    for path in (LIBRARY / "losses").glob("*.py"):
        assert all(area(target) == "losses" for target, _ in imports(path)), path.name


def test_circle_finder_on_a_hand_made_graph():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": {"e"}, "e": {"d"}, "f": {"a"}, "g": {"g"}}
    assert sorted(import_circles(graph)) == [["a", "b", "c"], ["d", "e"]]


def test_no_import_circle():
    """Module level and function level alike: a circle closed by an import inside a function still ties the two
    modules into one (neither can change or be tested without the other)."""
    graph = {module: imported_modules(module) - {module} for module in MODULES}
    assert not import_circles(graph)


def test_no_module_imports_another_modules_underscore_names():
    private = [(str(p.relative_to(ROOT)), target, name)
               for p in sorted([*LIBRARY.rglob("*.py"), *(ROOT / "tests").glob("*.py")])
               for target, names in imports(p) for name in names
               if name.startswith("_") and not name.startswith("__")]
    assert not private


def functions(tree: ast.AST, prefix: str):
    """(qualified name, node) of every function in `tree`, methods named Class.method, nested ones outer.inner."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            name = f"{prefix}.{node.name}"
            if not isinstance(node, ast.ClassDef):
                yield name, node
            yield from functions(node, name)
        else:
            yield from functions(node, prefix)


def parameter_count(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    a = node.args
    names = [p.arg for p in (*a.posonlyargs, *a.args, *a.kwonlyargs, *filter(None, (a.vararg, a.kwarg)))]
    return len(names) - (1 if names and names[0] in ("self", "cls") else 0)


def test_parameter_count_on_a_hand_made_function():
    tree = ast.parse("class A:\n    def f(self, a, /, b, *c, d, **e):\n        def g(x): pass\n"
                     "def h(cls, x=1): pass\n")
    assert [(name, parameter_count(node)) for name, node in functions(tree, "m")] == [
        ("m.A.f", 5), ("m.A.f.g", 1), ("m.h", 1)]


def test_no_function_takes_more_than_8_parameters():
    """Settings that travel together travel as one value (a settings dataclass, an EvalSet, a Row, a ModelCard ...),
    so a call reads in one line and a setting is followed from the notebook to where it is used."""
    many = {name: f"{path.relative_to(ROOT)}:{node.lineno} {name[len(module) + 1:]} ({parameter_count(node)})"
            for module, path in MODULES.items()
            for name, node in functions(ast.parse(path.read_text(encoding="utf-8")), module)
            if parameter_count(node) > MAX_PARAMETERS}
    assert not [where for name, where in many.items() if name not in PEER_INTERFACES]
    assert set(PEER_INTERFACES) <= set(many), "an exempted constructor no longer needs its exemption: remove it"


def test_no_function_is_over_80_lines():
    long = [(module, node.name, node.end_lineno - node.lineno + 1) for module, path in MODULES.items()
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]
    assert not long
