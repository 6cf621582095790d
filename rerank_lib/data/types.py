"""The few types that travel between stages: documents, a dataset split, and runs/qrels as plain dicts.

Runs and qrels use the dict-of-dicts shape of pytrec_eval / ir-measures ({qid: {docid: score}}), so they can
be handed to the evaluation library without conversion and written as TREC files.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Dict

Run = Dict[str, Dict[str, float]]  # qid -> docid -> score (higher is better)
Qrels = Dict[str, Dict[str, int]]  # qid -> docid -> graded relevance


@dataclass(frozen=True)
class Document:
    """A passage or abstract; `text_for_model` is what rankers and encoders read (title, then body)."""

    doc_id: str
    text: str
    title: str = ""

    @property
    def text_for_model(self) -> str:
        return f"{self.title} {self.text}".strip() if self.title else self.text


@dataclass
class Dataset:
    """One split of one collection: its corpus, queries and judgments, plus any first-stage runs that ship with it."""

    name: str
    split: str
    corpus: Dict[str, Document]
    queries: Dict[str, str]
    qrels: Qrels
    runs: Dict[str, Run] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.name}/{self.split}"

    def judged_queries(self) -> Dict[str, str]:
        """Queries that have at least one judgment (TREC DL 2020 ships 200 topics of which 54 are judged)."""
        return {q: t for q, t in self.queries.items() if q in self.qrels}

    def subset(self, query_ids) -> "Dataset":
        """The same corpus restricted to some queries (for smoke profiles and folds)."""
        keep = [q for q in query_ids if q in self.queries]
        return replace(self, queries={q: self.queries[q] for q in keep},
                       qrels={q: self.qrels[q] for q in keep if q in self.qrels},
                       runs={n: {q: r[q] for q in keep if q in r} for n, r in self.runs.items()})

    def summary(self) -> dict:
        n_judg = sum(len(v) for v in self.qrels.values())
        n_rel = sum(1 for v in self.qrels.values() for g in v.values() if g > 0)
        lengths = [len(d.text_for_model.split()) for d in self.corpus.values()]
        return {
            "dataset": self.key,
            "documents": len(self.corpus),
            "queries": len(self.queries),
            "judged_queries": len(self.qrels),
            "judgments": n_judg,
            "relevant_judgments": n_rel,
            "rel_per_query": round(n_rel / max(1, len(self.qrels)), 2),
            "doc_words_mean": round(sum(lengths) / max(1, len(lengths)), 1),
            "runs": ",".join(sorted(self.runs)) or "-",
        }

    def query_statistics(self) -> dict:
        """Query length in words and judgments per grade: why the tables read binary measures at grade >= 2 on TREC DL
        (dozens of graded judgments a query) and at grade >= 1 on SciFact (about one relevant abstract a claim)."""
        words = [len(t.split()) for t in self.queries.values()]
        grades = Counter(g for v in self.qrels.values() for g in v.values())
        return {"dataset": self.key, "query_words_mean": round(sum(words) / len(words), 1),
                "query_words_max": max(words), **{f"grade_{g}": grades[g] for g in sorted(grades)}}
