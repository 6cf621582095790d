"""The one dev evaluator the training loop calls: each pipeline makes the model's run on its dev queries its own
way (rerank, search, rerank listwise); measuring it and keeping it (for the interpolation weight) is shared."""
from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

from ..data.candidates import EvalSet
from ..data.trec import top_k
from ..data.types import Document, Run
from ..evaluation import document_recalls, evaluate


class DevEvaluator:
    """An `eval_fn` for `training.train`: `produce(model) -> Run`, scored with ir-measures `measures` on `qrels`;
    `extra(run) -> {name: value}` adds others (LocalRQA's document recall@k, agreement with a teacher). `runs` keeps
    every produced run in call order: the loop's `eval_history` order (step 0 first) when it saw every evaluation."""

    def __init__(self, produce: Callable[[Any], Run], qrels, measures: Sequence[str] = ("nDCG@10",),
                 extra: Callable[[Run], Mapping[str, float]] | None = None, prefix: str = ""):
        self.produce, self.qrels, self.measures, self.extra, self.prefix = produce, qrels, list(measures), extra, prefix
        self.runs: list[Run] = []

    @classmethod
    def reranking(cls, dev: EvalSet, as_ranker: Callable[[Any], Any] | None = None, extra=None,
                  **rerank_options) -> "DevEvaluator":
        """Rerank each dev query's top-`dev.depth` candidates (`dev.run`) with the model (any `Ranker`;
        `as_ranker(model)` wraps a bare network, e.g. a T5 under training, into one), scored with `dev.measures`
        (None: nDCG@10; empty: only `extra`'s)."""
        if dev.run is None or dev.corpus is None or dev.depth is None:
            raise ValueError(f"{dev.dataset}/{dev.split}: a dev set to rerank needs its candidates, corpus and depth")
        candidates, corpus, queries, depth = top_k(dev.run, dev.depth), dev.corpus, dev.queries, dev.depth

        def produce(model) -> Run:
            ranker = as_ranker(model) if as_ranker is not None else model
            return ranker.rerank(candidates, corpus, queries, depth=depth, **rerank_options)

        return cls(produce, dev.qrels, ("nDCG@10",) if dev.measures is None else dev.measures, extra)

    @classmethod
    def retrieval(cls, encoder, corpus: Mapping[str, Document], queries: Mapping[str, str], qrels, depth: int,
                  candidates: Run | None = None, ks: Sequence[int] = (1, 4),
                  measures: Sequence[str] = ("nDCG@10",)) -> "DevEvaluator":
        """Retrieve for the dev questions with the bi-encoder under training (the whole corpus, or reranking
        `candidates`), scored with `measures` and LocalRQA's document recall@k for each of `ks`."""
        from ..retrievers.training import retrieve

        return cls(lambda _model: retrieve(encoder, corpus, queries, depth, candidates), qrels, measures,
                   extra=(lambda run: document_recalls(run, qrels, ks)) if ks else None)

    def metrics(self, run: Run) -> dict[str, float]:
        out = dict(evaluate(run, self.qrels, self.measures)) if self.measures else {}
        if self.extra is not None:
            out.update(self.extra(run))
        return {f"{self.prefix}{k}": float(v) for k, v in out.items()}

    def __call__(self, model) -> dict[str, float]:
        run = self.produce(model)
        self.runs.append(run)
        return self.metrics(run)

    def run_at(self, eval_history: Sequence[Mapping], step: int) -> Run | None:
        """The dev run of the evaluation at `step`, when this evaluator produced every row of `eval_history`
        (None after a resumed run, whose earlier evaluations happened in another process)."""
        steps = [row["step"] for row in eval_history]
        if step not in steps or len(self.runs) != len(steps):
            return None
        return self.runs[steps.index(step)]
