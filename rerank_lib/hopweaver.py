"""HopWeaver's reranker-training side (Zh1yuShen/HopWeaver, hopweaver/train_reranker): the diverse retriever and the
contrastive data generator, on any corpus.

Diverse retriever (hopweaver/components/bridge/bridge_retriever.py, DiverseRetrieverWrapper): a dense retriever
returns a pool of 3 x top_k candidates (the source document removed); then greedy MMR picks top_k of them, each
time the candidate with the highest

    score(d) = l1 * rel(q, d) - l2 * sim(d, d0) - l3 * max_{s in S} sim(d, s)

where rel is the retriever's score, d0 the source document, S the documents picked so far, sim the cosine of
document embeddings, and (l1, l2, l3) renormalised to sum to 1 (README defaults 0.85 / 0.05 / 0.1; the ablation
script uses 0.87 / 0.03 / 0.1). As in the seed, the max-similarity term starts at 0 (so it is never negative), a
zero vector has similarity 0 with everything (so no source document means no l2 term), and ties keep the earlier
candidate of the pool.

Contrastive data generator (hopweaver/train_reranker/contrastive_data_generator.py): pick a source document, let an
LLM propose a bridge query from it (the seed's entity extractor: a bridge entity and an "expanded query" aimed at
information COMPLEMENTARY to the source), retrieve candidates with the diverse retriever, and let an LLM judge each
candidate (the seed asks the LLM to build a two-hop question through the bridge entity from the source's segment
and the candidate; success = positive). A line `{query, pos, neg}` is written when at least one positive and one
negative were found; the seed stops judging once it has one of each (`stop_when_both`).

Offline, the LLM is SmolLM2-135M-Instruct: its proposals and its yes/no judgements are measured in notebook 13, and
the judge can be replaced by the qrels of a labelled collection (`QrelsJudge`, the documented fallback) or a
teacher's score threshold (`ScoreJudge`). The seed's prompts ask for a delimited multi-field output that a 135M
model cannot produce; `QUERY_PROMPT` and `JUDGE_PROMPT` keep their instructions in a short form with a one-line
answer.
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from typing import Callable, Mapping, Protocol, Sequence

import numpy as np

from .data.jsonl import write_jsonl
from .data.pairs import TrainGroup
from .data.trec import ranked
from .data.types import Document, Qrels, Run

__all__ = [
    "MMRWeights", "mmr_select", "DiverseRetriever", "QUERY_PROMPT", "JUDGE_PROMPT", "LLMQueryProposer",
    "LLMJudge", "QrelsJudge", "ScoreJudge", "GeneratedExample", "generate_contrastive_data", "write_hopweaver",
    "parse_query",
]

README_LAMBDAS = (0.85, 0.05, 0.1)
ABLATION_LAMBDAS = (0.87, 0.03, 0.1)


@dataclass(frozen=True)
class MMRWeights:
    """(l1, l2, l3) as given; `normalised()` divides by their sum, as DiverseRetrieverWrapper does."""

    l1: float = README_LAMBDAS[0]
    l2: float = README_LAMBDAS[1]
    l3: float = README_LAMBDAS[2]

    def normalised(self) -> tuple[float, float, float]:
        values = (self.l1, self.l2, self.l3)
        if any(v < 0 for v in values) or sum(values) <= 0:
            raise ValueError(f"MMR weights must be >= 0 with a positive sum, got {values}")
        total = sum(values)
        return tuple(v / total for v in values)


def _cosine_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarities [len(a), len(b)]; a zero vector has similarity 0 with everything (seed rule)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    na, nb = np.linalg.norm(a, axis=-1, keepdims=True), np.linalg.norm(b, axis=-1, keepdims=True)
    a = np.divide(a, na, out=np.zeros_like(a), where=na > 0)
    b = np.divide(b, nb, out=np.zeros_like(b), where=nb > 0)
    return a @ b.T


def mmr_select(relevance: Sequence[float], doc_vectors: np.ndarray, source_vector: np.ndarray | None, top_k: int,
               weights: MMRWeights = MMRWeights()) -> list[tuple[int, float]]:
    """Greedy MMR over a candidate pool: [(pool index, MMR score at selection)] in selection order.

    relevance[i] is rel(q, d_i) (the retriever's score); doc_vectors [n, dim]; source_vector [dim] or None (no
    source document: the l2 term is 0, as for the seed's zero-norm vector).
    """
    rel = np.asarray(relevance, dtype=np.float64).reshape(-1)
    vecs = np.asarray(doc_vectors, dtype=np.float64)
    if vecs.ndim != 2 or len(vecs) != len(rel):
        raise ValueError(f"doc_vectors must be [{len(rel)}, dim], got shape {vecs.shape}")
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    l1, l2, l3 = weights.normalised()
    n = len(rel)
    if n == 0:
        return []
    source_sim = (np.zeros(n) if source_vector is None
                  else _cosine_matrix(vecs, np.asarray(source_vector).reshape(1, -1))[:, 0])
    pair_sim = _cosine_matrix(vecs, vecs)
    max_sim = np.zeros(n)  # max similarity to the selected set, starting at 0 as in the seed
    chosen: list[tuple[int, float]] = []
    available = np.ones(n, dtype=bool)
    for _ in range(min(top_k, n)):
        scores = l1 * rel - l2 * source_sim - l3 * max_sim
        scores[~available] = -np.inf
        best = int(np.argmax(scores))  # first index among ties, like the seed's strict '>'
        chosen.append((best, float(scores[best])))
        available[best] = False
        max_sim = np.maximum(max_sim, pair_sim[:, best])
    return chosen


class DiverseRetriever:
    """HopWeaver's standard and diverse retrieval over a corpus encoded once with a bi-encoder (cosine scores).

    encoder: a rerank_lib BiEncoder (normalised embeddings); the corpus embeddings are cached on disk by it.
    `standard` = RetrieverWrapper.retrieve_related_documents (top 2k searched, source removed, top k);
    `diverse`  = DiverseRetrieverWrapper.retrieve_with_diversity (pool of 3k, source removed, MMR to k).
    """

    def __init__(self, encoder, corpus: Mapping[str, Document], weights: MMRWeights = MMRWeights(),
                 corpus_embeddings: np.ndarray | None = None):
        self.encoder, self.corpus, self.weights = encoder, corpus, weights
        self.doc_ids = list(corpus)
        self.row = {d: i for i, d in enumerate(self.doc_ids)}
        self.embeddings = (np.asarray(corpus_embeddings, dtype=np.float32) if corpus_embeddings is not None
                           else encoder.encode_corpus(corpus))
        if len(self.embeddings) != len(self.doc_ids):
            raise ValueError(f"{len(self.embeddings)} embeddings for {len(self.doc_ids)} documents")

    def _search(self, query_vectors: np.ndarray, k: int) -> list[list[tuple[str, float]]]:
        scores = query_vectors @ self.embeddings.T
        k = min(k, len(self.doc_ids))
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        out = []
        for row, idx in zip(scores, top):
            idx = idx[np.argsort(-row[idx], kind="stable")]
            out.append([(self.doc_ids[i], float(row[i])) for i in idx])
        return out

    def query_vectors(self, queries: Sequence[str]) -> np.ndarray:
        """float32 [len(queries), dim] query embeddings (the encoder's query prefix), comparable to `embeddings`."""
        return np.asarray(self.encoder.encode_queries(list(queries)), dtype=np.float32)

    def standard(self, queries: Mapping[str, str], top_k: int = 10,
                 sources: Mapping[str, str | None] | None = None) -> Run:
        """{qid: {doc: cosine}}: the top 2k, minus the query's source document, cut to k."""
        sources = sources or {}
        qids = list(queries)
        hits = self._search(self.query_vectors([queries[q] for q in qids]), 2 * top_k)
        return {q: dict([(d, s) for d, s in h if d != sources.get(q)][:top_k]) for q, h in zip(qids, hits)}

    def diverse(self, queries: Mapping[str, str], top_k: int = 10, sources: Mapping[str, str | None] | None = None,
                pool: Run | None = None) -> Run:
        """{qid: {doc: score}} of the MMR selection, scores decreasing with the selection order.

        pool: candidate scores per query to select from instead of the dense top 3k (e.g. another first stage);
        its scores are the rel term. The returned scores are top_k - rank (the MMR values themselves are not
        monotone in the selection order) and the MMR values are kept in `self.last_mmr_scores`.
        """
        sources = sources or {}
        qids = list(queries)
        if pool is None:
            hits = self._search(self.query_vectors([queries[q] for q in qids]), 3 * top_k)
            candidates = {q: h for q, h in zip(qids, hits)}
        else:
            candidates = {q: ranked(pool.get(q, {}))[:3 * top_k] for q in qids}
        out: Run = {}
        self.last_mmr_scores: dict[str, list[float]] = {}
        for q in qids:
            source = sources.get(q)
            cand = [(d, s) for d, s in candidates[q] if d != source]
            if not cand:
                out[q] = {}
                continue
            vecs = self.embeddings[[self.row[d] for d, _ in cand]]
            source_vec = self.embeddings[self.row[source]] if source is not None else None
            picked = mmr_select([s for _, s in cand], vecs, source_vec, top_k, self.weights)
            out[q] = {cand[i][0]: float(top_k - rank) for rank, (i, _) in enumerate(picked)}
            self.last_mmr_scores[q] = [s for _, s in picked]
        return out


# ---------------------------------------------------------------------------------------------------- LLM steps

# The seed's ENTITY_EXTRACTION_PROMPT, in short: one bridge entity of the document and one 10-20 word query for
# information about it that the document does NOT hold (the seed's "instead of / beyond" steering).
QUERY_PROMPT = (
    "Read the document. Pick one important entity in it (a concept, substance, gene, disease, method or event) "
    "that other documents also discuss. Write one search query of 10 to 20 words about that entity that looks for "
    "information NOT in this document (use words like 'beyond' or 'instead of').\n\n"
    "Document: {document}\n\n"
    "Answer with one line in the form: Entity: <entity> | Query: <query>"
)
# The seed's SUB_QUESTION_GENERATION_PROMPT, in short: does candidate B continue a two-hop chain from the source A
# through the bridge query (else INVALID_BRIDGE_CONNECTION)? Answered by the first token, Yes or No, in one forward
# pass. {query} receives the query and the source (so that only document B is ever truncated).
JUDGE_PROMPT = (
    "Query: {query}\n\nDocument B: {passage}\n\n"
    "Does Document B give information that answers the query and goes beyond Document A (when one is given), so "
    "that a two-step question can lead from Document A to Document B? Answer Yes or No."
)

_QUERY_RE = re.compile(r"query\s*[:\-]\s*(.+)", re.IGNORECASE)


def parse_query(text: str, min_words: int = 3, max_words: int = 40) -> str | None:
    """The query of an 'Entity: ... | Query: ...' answer (or the first usable line); None when unusable."""
    if not isinstance(text, str):
        return None
    match = _QUERY_RE.search(text)
    candidate = match.group(1) if match else next((line for line in text.splitlines() if line.strip()), "")
    candidate = candidate.split("\n")[0].strip().strip('"').strip()
    words = candidate.split()
    if len(words) < min_words:
        return None
    return " ".join(words[:max_words])


class Judge(Protocol):
    def __call__(self, query_id: str, query: str, source: Document | None, candidates: Sequence[Document]
                 ) -> list[bool]: ...


class LLMQueryProposer:
    """Greedy generation of a bridge query from a source document with a chat LLM (SmolLM2 offline)."""

    def __init__(self, model_name: str = "smollm2-135m-instruct", max_new_tokens: int = 48, max_doc_tokens: int = 256,
                 prompt: str = QUERY_PROMPT, device=None):
        from .models import load_causal_lm, load_tokenizer, pick_device

        self.device = device or pick_device()
        self.tokenizer = load_tokenizer(model_name)  # the judge's LM too: the GGUF is de-quantised once per machine
        self.model = load_causal_lm(model_name, device=self.device)
        self.model_name, self.max_new_tokens, self.max_doc_tokens, self.prompt = (
            model_name, max_new_tokens, max_doc_tokens, prompt)
        self.raw: list[str] = []  # every generation, for the notebook to show

    def __call__(self, document: Document) -> str | None:
        import torch

        ids = self.tokenizer.encode(document.text_for_model, add_special_tokens=False)[: self.max_doc_tokens]
        text = self.tokenizer.apply_chat_template(
            [{"role": "user", "content": self.prompt.format(document=self.tokenizer.decode(ids))}],
            tokenize=False, add_generation_prompt=True)
        enc = self.tokenizer(text, return_tensors="pt", add_special_tokens=False).to(self.device)
        with torch.inference_mode():
            out = self.model.generate(**enc, max_new_tokens=self.max_new_tokens, do_sample=False,
                                      pad_token_id=self.tokenizer.pad_token_id or self.tokenizer.eos_token_id)
        answer = self.tokenizer.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)
        self.raw.append(answer)
        return parse_query(answer)


class LLMJudge:
    """P(Yes) of JUDGE_PROMPT at the first generated step (one forward pass per candidate, a DecoderReranker with the
    chat prompt); positive at or above `threshold`."""

    def __init__(self, scorer, threshold: float = 0.5, max_source_words: int = 60):
        self.scorer, self.threshold, self.max_source_words = scorer, threshold, max_source_words

    @classmethod
    def for_model(cls, model_name: str = "smollm2-135m-instruct", max_length: int = 192, threshold: float = 0.5,
                  **kwargs) -> "LLMJudge":
        from .rerankers.llm_reranker import DecoderReranker, PromptFormat

        fmt = PromptFormat(kind="chat", chat_prompt=JUDGE_PROMPT, max_query_fraction=0.45)
        return cls(DecoderReranker(model_name, head="yes", prompt=fmt, max_length=max_length), threshold, **kwargs)

    def query_text(self, query: str, source: Document | None) -> str:
        src = " ".join(source.text_for_model.split()[: self.max_source_words]) if source is not None else "(none)"
        return f"{query}\n\nDocument A: {src}"

    def probabilities(self, query: str, source: Document | None, candidates: Sequence[Document]) -> np.ndarray:
        return self.scorer.yes_probability([self.query_text(query, source)] * len(candidates),
                                           [c.text_for_model for c in candidates])

    def __call__(self, query_id, query, source, candidates) -> list[bool]:
        return [bool(p >= self.threshold) for p in self.probabilities(query, source, candidates)]


class QrelsJudge:
    """The documented fallback judge on a labelled collection: positive iff judged relevant (grade >= min_grade)."""

    def __init__(self, qrels: Qrels, min_grade: int = 1):
        self.qrels, self.min_grade = qrels, min_grade

    def __call__(self, query_id, query, source, candidates) -> list[bool]:
        judged = self.qrels.get(query_id, {})
        return [judged.get(c.doc_id, 0) >= self.min_grade for c in candidates]


class ScoreJudge:
    """Positive iff a scorer's value for (query, candidate) reaches `threshold` (e.g. a teacher's cosine)."""

    def __init__(self, score_fn: Callable[[str, Sequence[str]], Sequence[float]], threshold: float):
        self.score_fn, self.threshold = score_fn, threshold

    def __call__(self, query_id, query, source, candidates) -> list[bool]:
        return [float(s) >= self.threshold for s in self.score_fn(query, [c.text_for_model for c in candidates])]


# ---------------------------------------------------------------------------------------------------- generator


@dataclass
class GeneratedExample:
    """One generator attempt: its source, query, the candidates in retrieval order and their verdicts."""

    query_id: str
    query: str | None
    source_id: str | None
    candidates: list[str] = field(default_factory=list)
    verdicts: list[bool] = field(default_factory=list)

    @property
    def pos(self) -> list[str]:
        return [d for d, v in zip(self.candidates, self.verdicts) if v]

    @property
    def neg(self) -> list[str]:
        return [d for d, v in zip(self.candidates, self.verdicts) if not v]

    @property
    def usable(self) -> bool:
        return bool(self.query and self.pos and self.neg)


def generate_contrastive_data(
    retriever: DiverseRetriever, judge: Judge, *, sources: Mapping[str, str | None] | None = None,
    queries: Mapping[str, str] | None = None, proposer: Callable[[Document], str | None] | None = None,
    top_k: int = 10, stop_when_both: bool = True, max_examples: int | None = None,
) -> list[GeneratedExample]:
    """Run the generator over attempts; returns every attempt (usable ones have a query, >= 1 pos and >= 1 neg).

    Two ways to get each attempt's query:
      proposer + sources {attempt id: source doc id}: the LLM proposes a bridge query from the source (the seed);
      queries {attempt id: text} (+ optional sources): given queries, e.g. a collection's own questions when the
        judge is its qrels (the fallback; the attempt id is then the query id the qrels know).
    Candidates come from retriever.diverse (source removed); the judge labels them in retrieval order, stopping
    once one positive and one negative are found when stop_when_both (the seed's rule, which saves LLM calls).
    """
    if (proposer is None) == (queries is None):
        raise ValueError("give exactly one of proposer (with sources) or queries")
    if proposer is not None and not sources:
        raise ValueError("a proposer needs sources: {attempt id: source document id}")
    sources = dict(sources or {})
    attempt_ids = list(queries) if queries is not None else list(sources)
    for aid in attempt_ids:
        src = sources.get(aid)
        if src is not None and src not in retriever.corpus:
            raise KeyError(f"attempt {aid}: source document {src!r} is not in the corpus")
    examples: list[GeneratedExample] = []
    for aid in attempt_ids:
        if max_examples is not None and sum(e.usable for e in examples) >= max_examples:
            break
        src_id = sources.get(aid)
        source = retriever.corpus[src_id] if src_id is not None else None
        query = queries[aid] if queries is not None else proposer(source)
        example = GeneratedExample(aid, query, src_id)
        examples.append(example)
        if not query:
            continue
        found = retriever.diverse({aid: query}, top_k=top_k, sources={aid: src_id})[aid]
        docs = [retriever.corpus[d] for d, _ in ranked(found)]
        if stop_when_both:
            for doc in docs:  # one judgement at a time, as the seed validates one candidate per LLM call
                verdict = judge(aid, query, source, [doc])[0]
                example.candidates.append(doc.doc_id)
                example.verdicts.append(bool(verdict))
                if example.pos and example.neg:
                    break
        else:
            example.candidates = [d.doc_id for d in docs]
            example.verdicts = [bool(v) for v in judge(aid, query, source, docs)]
    return examples


def to_groups(examples: Sequence[GeneratedExample], corpus: Mapping[str, Document]) -> list[TrainGroup]:
    """Usable examples as TrainGroups (positives first), the in-memory form every trainer reads."""
    groups = []
    for e in examples:
        if not e.usable:
            continue
        docs = e.pos + e.neg
        groups.append(TrainGroup(e.query, [corpus[d].text_for_model for d in docs],
                                 [1.0] * len(e.pos) + [0.0] * len(e.neg), n_pos=len(e.pos), query_id=e.query_id,
                                 doc_ids=docs))
    return groups


def write_hopweaver(path, examples: Sequence[GeneratedExample], corpus: Mapping[str, Document]):
    """HopWeaver's training file: one `{query, pos: [text], neg: [text]}` per usable example (atomic write)."""
    rows = [{"query": e.query, "pos": [corpus[d].text_for_model for d in e.pos],
             "neg": [corpus[d].text_for_model for d in e.neg]} for e in examples if e.usable]
    return write_jsonl(path, rows)


def sample_sources(qrels: Qrels, seed: int, n: int, exclude: Sequence[str] = ()) -> dict[str, str]:
    """{query id: one of its judged documents} for n seeded queries: source documents with a known topic."""
    rng = random.Random(seed)
    qids = sorted(q for q in qrels if q not in set(exclude) and any(g > 0 for g in qrels[q].values()))
    rng.shuffle(qids)
    out = {}
    for q in qids[:n]:
        rel = sorted(d for d, g in qrels[q].items() if g > 0)
        out[q] = rng.choice(rel)
    return out
