"""A pipeline is one Recipe: its notebook calls its steps in order, every profile resolves, one seed rule, the shell's
sub-commands are the registry; the example pipeline (tests/example_pipeline) is trained from the shell and its
notebook finds the shell's run."""
from __future__ import annotations

import ast
import importlib
import json
import sys
import typing
from pathlib import Path

import pytest

from rerank_lib import recipes, train
from rerank_lib.settings import PROFILES, paths, value_at

NAMES = list(recipes.MODULES)
EXAMPLE = Path(__file__).with_name("example_pipeline")


def called_names(notebook: Path) -> list[str]:
    """The function names the notebook's code cells call (`recipe.step(...)` or `step(...)`), in order."""
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    names = []
    for cell in cells:
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"])
        tree = ast.parse("\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))))
        calls = sorted((n for n in ast.walk(tree) if isinstance(n, ast.Call)), key=lambda n: (n.lineno, n.col_offset))
        for call in calls:
            func = call.func
            names.append(func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None))
    return names


@pytest.mark.parametrize("name", NAMES)
def test_the_notebook_calls_the_recipes_steps_in_order(name):
    recipe = recipes.get(name)
    called = called_names(recipe.notebook_file)
    assert recipe.steps
    missing = [s for s in recipe.steps if s not in called]
    assert not missing, f"{recipe.notebook} never calls {missing}"
    first = [called.index(s) for s in recipe.steps]
    assert first == sorted(first), f"{recipe.notebook} calls {recipe.steps} in another order"


@pytest.mark.parametrize("name", NAMES)
def test_every_step_and_the_training_belong_to_the_recipes_module(name):
    recipe = recipes.get(name)
    module = importlib.import_module(f"rerank_lib.recipes.{recipes.MODULES[name]}")
    assert module.RECIPE is recipe and recipe.name == name
    assert [s for s in recipe.steps if not callable(getattr(module, s, None))] == []
    assert recipe.training.__module__.startswith(module.__name__)


#: what writes a record: a step that calls one of these (directly or through its package's functions) evaluates
WRITERS = {"record_run", "record_reranker"}


def imported_writers(module) -> set[str]:
    """The record writers of the sibling recipe modules a recipe module imports (`from .cross_encoder import ...`,
    `from . import cross_encoder`): a recipe built on another's steps writes through them."""
    root = Path(module.__file__)
    if root.name == "__init__.py" or root.parent.name != "recipes":
        return set()
    out = set()
    for node in ast.walk(ast.parse(root.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            for name in [node.module] if node.module else [a.name for a in node.names]:
                try:
                    sibling = importlib.import_module(f"rerank_lib.recipes.{name}")
                except ImportError:
                    continue
                out |= record_writers(sibling) | (WRITERS & set(vars(sibling)))
    return out


def record_writers(module) -> set[str]:
    """The functions of `module`'s package (or of the module alone) that write records, through any chain of
    calls by name inside it (or into the writers of the sibling recipe modules it imports)."""
    root = Path(module.__file__)
    files = sorted(root.parent.glob("*.py")) if root.name == "__init__.py" else [root]
    calls: dict[str, set[str]] = {}
    for file in files:
        for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef):
                calls.setdefault(node.name, set()).update(
                    c.func.attr if isinstance(c.func, ast.Attribute) else getattr(c.func, "id", None)
                    for c in ast.walk(node) if isinstance(c, ast.Call))
    writers = set(WRITERS) | imported_writers(module)
    while grown := {f for f, called in calls.items() if f not in writers and called & writers}:
        writers |= grown
    return writers - WRITERS


def holds_records(kind) -> bool:
    """A class whose `records` is annotated `list[Record]`, or a tuple of such classes (a start and its student)."""
    from rerank_lib.results import Record

    if typing.get_origin(kind) is tuple:
        return all(holds_records(k) for k in typing.get_args(kind))
    hints = typing.get_type_hints(kind) if isinstance(kind, type) else {}
    return hints.get("records") == list[Record]


def bare_records(kind) -> bool:
    """A Record, or a list of them, anywhere in a return annotation."""
    from rerank_lib.results import Record

    return kind is Record or kind == list[Record] or any(bare_records(k) for k in typing.get_args(kind))


def evaluating_steps(recipe, module) -> dict[str, object]:
    """step -> its return annotation, for every step that writes records."""
    writers = record_writers(module)
    return {s: typing.get_type_hints(getattr(module, s)).get("return") for s in recipe.steps if s in writers}


@pytest.mark.parametrize("name", NAMES)
def test_every_evaluating_step_returns_its_records_one_way(name):
    """Every step that writes records returns an object with `.records` (list[Record]); no step returns a bare
    Record or list of records, so every notebook collects them with experiment.records_of."""
    recipe = recipes.get(name)
    module = importlib.import_module(f"rerank_lib.recipes.{recipes.MODULES[name]}")
    evaluating = evaluating_steps(recipe, module)
    assert evaluating, f"{name}: no step writes a record"
    assert {s: kind for s, kind in evaluating.items() if not holds_records(kind)} == {}
    returns = {s: typing.get_type_hints(getattr(module, s)).get("return") for s in recipe.steps}
    assert [s for s, kind in returns.items() if bare_records(kind)] == []


def test_the_shape_check_tells_the_shapes_apart():
    from rerank_lib.experiment import Evaluated
    from rerank_lib.recipes.inranker import Evaluation
    from rerank_lib.recipes.llm_reranker import Row
    from rerank_lib.results import Record

    assert holds_records(Evaluated) and holds_records(Evaluation) and holds_records(tuple[Row, Row])
    assert not holds_records(list[Record]) and not holds_records(Record) and not holds_records(tuple[Row, list])
    assert bare_records(list[Record]) and bare_records(tuple[list[Record], dict]) and bare_records(Record)
    assert not bare_records(Evaluated) and not bare_records(list[int])
    from rerank_lib.recipes import first_stage, hopweaver

    assert set(evaluating_steps(first_stage.RECIPE, first_stage)) == {"run_scifact", "run_trec_dl"}
    assert set(evaluating_steps(hopweaver.RECIPE, hopweaver)) == {"ablation", "own_data_rows"}
    from rerank_lib.recipes import distillation  # writes through the cross-encoder's evaluate_variant

    assert set(evaluating_steps(distillation.RECIPE, distillation)) == {"evaluate_losses"}


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("profile", PROFILES)
def test_every_profile_resolves_and_seed_seeds_every_stage(name, profile, monkeypatch):
    monkeypatch.delenv("RERANK_STANDIN", raising=False)
    recipe = recipes.get(name)
    cfg = recipe.config(profile)
    assert cfg.profile == profile and set(paths(cfg)) == set(paths(recipe.settings()))
    named = set(recipe.values(profile))
    seeded = recipe.config(profile, seed=7)
    assert seeded.seed == 7
    for stage in recipe.stages:
        expected = value_at(cfg, f"{stage}.seed") if f"{stage}.seed" in named else 7
        assert value_at(seeded, f"{stage}.seed") == expected, stage
    if recipe.stages:  # a stage seed the caller gives wins over `seed`
        stage = recipe.stages[-1]
        own = recipe.config(profile, seed=7, **{f"{stage}.seed": 99})
        assert value_at(own, f"{stage}.seed") == 99
        assert all(value_at(own, f"{s}.seed") == value_at(seeded, f"{s}.seed") for s in recipe.stages[:-1])


def test_the_seed_rule_by_hand(tmp_path):
    from dataclasses import dataclass, field

    from rerank_lib.recipes.recipe import Recipe
    from rerank_lib.settings import Settings
    from rerank_lib.training import TrainConfig

    @dataclass(frozen=True)
    class Two(Settings):
        profile: str = "default"
        seed: int = 13
        a: TrainConfig = field(default_factory=lambda: TrainConfig(seed=1))
        b: TrainConfig = field(default_factory=lambda: TrainConfig(seed=2))
        size: int = 1

    yaml = tmp_path / "two.yaml"
    yaml.write_text("pipeline: two\nprofile: paper\nsettings:\n  b.seed: {value: 42, source: the paper's seed}\n"
                    "profiles:\n  default: {size: 5}\n  smoke: {a.seed: 99, size: 2}\n")
    two = Recipe("two", "two", Two, stages=("a", "b"), yaml=yaml, derived={"a.output_dir": "nothing"})
    cfg = two.config("default", seed=5)
    assert (cfg.seed, cfg.a.seed, cfg.b.seed, cfg.size) == (5, 5, 5, 5)
    cfg = two.config("smoke", seed=5)  # the profile names a's seed; the default profile lies under smoke
    assert (cfg.seed, cfg.a.seed, cfg.b.seed, cfg.size) == (5, 99, 5, 2)
    cfg = two.config("paper", seed=5, **{"a": {"seed": 3}})  # the paper names b's, the caller a's
    assert (cfg.seed, cfg.a.seed, cfg.b.seed, cfg.size) == (5, 3, 42, 5)
    with pytest.raises(ValueError, match="a.output_dir is set by the recipe: set nothing instead"):
        two.config("default", **{"a.output_dir": "x"})


def test_the_shell_sub_commands_are_the_registry():
    parser = train.build_parser()
    sub = next(a for a in parser._actions if a.dest == "pipeline")
    assert list(sub.choices) == list(recipes.REGISTRY) == NAMES
    recipe = recipes.get("cross_encoder")
    assert sub.choices["cross_encoder"].format_help().count("--model_name_or_path") == 1
    assert f"notebook {recipe.notebook}" in " ".join(sub.choices["cross_encoder"].format_help().split())


def test_a_recipe_from_outside_the_package_is_refused_by_name():
    with pytest.raises(KeyError, match="no pipeline 'nope'"):
        recipes.get("nope")


@pytest.fixture()
def toy(monkeypatch, private_cache):
    sys.path.insert(0, str(EXAMPLE.parent))
    from example_pipeline import toy

    recipes.REGISTRY.register(toy.RECIPE)
    yield toy
    recipes.REGISTRY.unregister("toy")
    sys.path.remove(str(EXAMPLE.parent))


def test_the_example_pipeline_trains_from_the_shell_and_its_notebook_finds_the_run(toy, tmp_path, capsys):
    recipe = toy.RECIPE
    assert [n for n in called_names(recipe.notebook_file) if n in recipe.steps] == list(recipe.steps)
    assert recipe.config("smoke").train.learning_rate == 0.01 and recipe.config("paper").points == 16
    assert train.main(["toy", "--profile", "smoke", "--results-dir", str(tmp_path), "--slope", "3"]) == 0
    shell = capsys.readouterr().out
    assert shell.startswith("toy: ") and "| selected " in shell
    cells = json.loads(recipe.notebook_file.read_text())["cells"]
    scope = {}
    for cell in cells:
        if cell["cell_type"] == "code":
            exec("".join(cell["source"]), scope)
            if "parameters" in cell["metadata"].get("tags", []):
                scope.update(profile="smoke", results_dir=str(tmp_path), overrides={"slope": 3.0})
    assert scope["cfg"].slope == 3.0 and scope["cfg"].train.seed == 13
    assert scope["selected"].result.cached  # the notebook's call found the run the shell trained
    evaluated = scope["evaluated"]  # its evaluating step returns its records the one way
    assert holds_records(typing.get_type_hints(toy.evaluate_model)["return"])
    assert set(evaluating_steps(recipe, toy)) == {"evaluate_model"}
    (record,) = evaluated.records
    assert (record.pipeline, record.method, record.dataset, record.split) == ("toy", "linear", "toy", "test")
    # each test point's RR@10: 1 when the true y ranks first, 1/2 when the steep line's y does
    xs, _ = toy.held_out_points(scope["cfg"])
    run = evaluated.runs["linear"]
    assert list(run) == list(xs) and len(xs) == 2
    rr = [1.0 if run[q]["true"] > run[q]["steep"] else 0.5 for q in xs]
    assert record.metrics == pytest.approx({"RR@10": sum(rr) / 2})
    assert list((tmp_path / "records" / "smoke").glob("toy__linear*.json"))
