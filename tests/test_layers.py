"""The layer rule of the library (CONTRIBUTING.md): imports point down, never up, and no module reaches into another
module's underscore names. Read from the source with `ast`, so a new import that breaks the rule fails here."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = ROOT / "rerank_lib"

GROUND = {"data", "models", "first_stage", "evaluation", "results", "collate", "atomic", "paths", "progress",
          "code_version"}
PARTS = {"rerankers", "listwise", "retrievers", "losses", "training"}
ABOVE_PARTS = {"experiment", "recipes", "cli", "train", "runner", "release"}
#: (importing area, imported areas it must not import) for each rule
RULES = [
    ({"rerankers", "listwise", "retrievers"}, {"training", "evaluation", "experiment", "recipes"}),
    (GROUND, PARTS | ABOVE_PARTS),
    (PARTS, ABOVE_PARTS),
    ({"experiment"}, {"recipes", "cli", "train", "runner", "release"}),
]


def module_name(path: Path) -> tuple[str, bool]:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts), path.name == "__init__.py"


def imports(path: Path) -> list[tuple[str, list[str]]]:
    """(imported module, names) for every `import` / `from ... import` of the project in `path`."""
    module, is_package = module_name(path)
    package = module if is_package else module.rsplit(".", 1)[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("rerank_lib"):
                out.append((target, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names if a.name.startswith("rerank_lib")]
    return out


def area(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_area_and_relative_import_resolution():
    assert area("rerank_lib.rerankers.llm_reranker.ranker") == "rerankers" and area("rerank_lib") == ""
    found = dict(imports(LIBRARY / "rerankers" / "llm_reranker" / "ranker.py"))
    assert "rerank_lib.collate" in found and "rerank_lib.rerankers.llm_reranker.features" in found


@pytest.mark.parametrize("importer, forbidden", RULES, ids=lambda v: "+".join(sorted(v))[:40])
def test_imports_point_down(importer, forbidden):
    broken = [(module_name(p)[0], target) for p in sorted(LIBRARY.rglob("*.py")) if area(module_name(p)[0]) in importer
              for target, _ in imports(p) if area(target) in forbidden]
    assert not broken


def test_a_loss_imports_only_torch_and_other_losses():
    for path in (LIBRARY / "losses").glob("*.py"):
        assert all(area(target) == "losses" for target, _ in imports(path)), path.name


def test_no_module_imports_another_modules_underscore_names():
    private = [(str(p.relative_to(ROOT)), target, name)
               for p in sorted([*LIBRARY.rglob("*.py"), *(ROOT / "tests").glob("*.py")])
               for target, names in imports(p) for name in names
               if name.startswith("_") and not name.startswith("__")]
    assert not private
