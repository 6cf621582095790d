"""faire's untrained systems: BM25, the zero-shot encoder (every trainer's start) and the offline teachers."""
from __future__ import annotations

from dataclasses import dataclass

from ...data.trec import top_k
from ...data.types import Run
from ...evaluation import reciprocal_rank_fusion
from ...experiment import DevEvaluator, save_run
from ...first_stage import BM25Index, rerank_with_encoder
from ...retrievers.bi_encoder import BiEncoder
from ...retrievers.training import retrieve
from .settings import FAIRE, FaireConfig, FaireData


@dataclass
class Baselines:
    """Runs of the untrained systems on eval and test, and the start model's eval metrics (step 0 of every curve)."""

    runs: dict[str, dict[str, Run]]  # method -> split -> run
    start_eval: dict[str, float]


def faire_baselines(cfg: FaireConfig, data: FaireData, enc: BiEncoder, results_dir) -> Baselines:
    """BM25 (bm25s over fmt_content), the zero-shot encoder (the start point of every trainer) and the offline
    teachers (MiniLM reranking BM25's top-depth, and its RRF fusion with BM25) on eval and test."""
    indexes: dict[int, BM25Index] = {}  # one per corpus: eval and test share faire's; a train_file brings its own
    runs: dict[str, dict[str, Run]] = {"bm25": {}, "zero-shot": {}, "teacher-minilm-l6": {},
                                       "teacher-bm25+minilm-l6": {}}
    for split, ds in (("eval", data.eval), ("test", data.test)):
        if id(ds.corpus) not in indexes:
            indexes[id(ds.corpus)] = BM25Index.build(ds.corpus)
        runs["bm25"][split] = indexes[id(ds.corpus)].search(ds.queries, k=cfg.depth)
        runs["zero-shot"][split] = retrieve(enc, ds.corpus, ds.queries, cfg.depth)
        # The offline teachers of rerank_lib.teacher (MiniLM reranking the first stage, and its RRF fusion with
        # it), computed with the start's own embeddings (max_length cfg.max_length, already cached) rather than a
        # second encoding of the corpus at 256 tokens: the same definitions at the training length.
        first = top_k(runs["bm25"][split], cfg.depth)
        dense = rerank_with_encoder(enc, first, ds.corpus, ds.queries, depth=cfg.depth)
        runs["teacher-minilm-l6"][split] = dense
        runs["teacher-bm25+minilm-l6"][split] = reciprocal_rank_fusion({"first_stage": first, "dense": dense}, k=60)
    for method, by_split in runs.items():
        save_run(by_split["test"], results_dir, cfg.profile, FAIRE, "test", method)
    dev = DevEvaluator.retrieval(enc, data.eval.corpus, data.eval.queries, data.eval.qrels, cfg.depth)
    start_eval = dev.metrics(runs["zero-shot"]["eval"])
    return Baselines(runs, start_eval)
