"""The test suite's example pipeline, as CONTRIBUTING.md's "add a pipeline" checklist makes one: this recipe module,
its YAML (toy.yaml) and its notebook (toy.ipynb). A linear model learns y = slope * x on a few points; a dev point
selects the checkpoint (the untrained start is a candidate); held-out test points are its records."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from rerank_lib.experiment import (
    DevEvaluator, EvalSet, Evaluated, Row, Selected, record_run, run_dir, train_with_dev_selection,
)
from rerank_lib.recipes.recipe import Recipe, Trained
from rerank_lib.settings import Settings, snapshot
from rerank_lib.training import TrainConfig


@dataclass(frozen=True)
class ToyConfig(Settings):
    profile: str = "default"
    seed: int = 13
    data_root: str | None = None
    launch: str | None = None  # an accelerate config: the shell trains first (Recipe.training_step)
    slope: float = 2.0
    points: int = 8
    train: TrainConfig = field(default_factory=TrainConfig)


def training(cfg: ToyConfig, results_dir, evaluate: bool) -> dict:
    """The notebook's steps, for `python -m rerank_lib.train toy` (--evaluate: its records too)."""
    data = make_data(cfg)
    selected = train_model(cfg, data, results_dir)
    if evaluate:
        print("toy records:", [r.method for r in evaluate_model(cfg, selected, results_dir).records])
    return {"toy": Trained.run_folder(selected, "torch.nn.Linear(1, 1)")}


RECIPE = Recipe("toy", str(Path(__file__).with_name("toy.ipynb")), ToyConfig, stages=("train",),
                flags={"slope": "slope"}, derived={"train.output_dir": "nothing: experiment.run_dir names it"},
                steps=("make_data", "train_model", "evaluate_model"), training=training, yaml=Path(__file__).with_name("toy.yaml"))


def make_data(cfg: ToyConfig) -> list:
    """(x, y) pairs on y = slope * x, x = 1..points."""
    xs = [torch.tensor([float(i)]) for i in range(1, cfg.points + 1)]
    return [(x, cfg.slope * x) for x in xs]


def collate(items):
    return torch.stack([x for x, _ in items]), torch.stack([y for _, y in items])


def loss(model, batch):
    x, y = batch
    return torch.nn.functional.mse_loss(model(x), y)


@RECIPE.training_step
def train_model(cfg: ToyConfig, data: list, results_dir=None) -> Selected:
    """Train from a seeded start; a dev point x = 3 (its squared error, negated) selects the checkpoint."""
    torch.manual_seed(cfg.train.seed)
    model = torch.nn.Linear(1, 1)

    def produce(m):
        err = float(((m(torch.tensor([[3.0]])) - 3.0 * cfg.slope) ** 2).item())
        return {"q": {"good": -err, "bad": -1e9}}

    dev = DevEvaluator(produce, {"q": {"good": 1}}, measures=["RR@10"], extra=lambda run: {"neg_err": run["q"]["good"]})
    folder = run_dir("toy", cfg.profile, "linear", data=[(float(x), float(y)) for x, y in data],
                     settings=snapshot(cfg.train))
    return train_with_dev_selection(model, data, collate, loss, replace(cfg.train, output_dir=str(folder)), dev)


def held_out_points(cfg: ToyConfig) -> tuple[dict[str, float], EvalSet]:
    """Held-out points x = points+1 and points+2, each a query whose candidates are the true y ('true', relevant)
    and the y of a line twice as steep ('steep')."""
    xs = {f"x{i}": float(i) for i in (cfg.points + 1, cfg.points + 2)}
    qrels = {q: {"true": 1, "steep": 0} for q in xs}
    return xs, EvalSet("toy", "test", {q: q for q in xs}, qrels, "none", measures=["RR@10"])


def evaluate_model(cfg: ToyConfig, selected: Selected, results_dir) -> Evaluated:
    """The selected weights on the test points: a candidate scores minus its squared distance to the prediction."""
    model = torch.nn.Linear(1, 1)
    model.load_state_dict(torch.load(selected.model_dir / "model.pt"))
    xs, test = held_out_points(cfg)
    with torch.no_grad():
        run = {q: {d: -float((model(torch.tensor([[x]])) - y) ** 2)
                   for d, y in (("true", cfg.slope * x), ("steep", 2 * cfg.slope * x))} for q, x in xs.items()}
    row = Row("toy", "linear", cfg.profile, "torch.nn.Linear(1, 1)", snapshot(cfg.train), cfg.train.seed)
    return Evaluated([record_run(run, test, row, results_dir)], {"linear": run})
