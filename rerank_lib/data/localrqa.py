"""LocalRQA's data formats (Yu et al., 2024; github.com/jasonyux/LocalRQA), read with one validating reader each.

Three kinds of JSONL file, as LocalRQA writes them (example/<name>/...):

* documents: either raw documents ``{"text", "title", "source"}`` (``raw/docs.jsonl``) or chunked documents
  ``{"page_content", "fmt_content"?, "metadata": {"source", "title", ...}}`` (LocalRQA's ``Document.to_dict()``);
* ``<split>_w_q.jsonl``: ``{"questions": [str], "gold_docs": [doc], "hard_neg_docs": [doc], "chat_history": []}``,
  one line per gold passage, usually two questions per line;
* ``<split>_w_qa.jsonl``: the same, flattened to one ``"question"`` per line, plus ``"gold_answer"``.

Conventions taken from LocalRQA itself:

* a document's identity is (metadata.source, page_content) (``evaluation/metrics.is_same_document``); our doc id is
  a hash of that pair, so the same chunk in two files is one document;
* the text a retriever embeds is ``fmt_content`` = "Source: <source>\\nTitle: <title>\\nContent:\\n<page_content>"
  (``schema/document.default_document_formatter``; ``FaissRetriever`` embeds fmt_content). It is rebuilt from the
  metadata when a file omits it, and a file's own fmt_content is kept as is.

The retrieval corpus: LocalRQA evaluates against its chunked document database (``database/<name>.pkl``,
1,758 chunks for faire), which the shared data does not ship, and whose chunks the published
``scripts/data/process_docs.py`` does not reproduce from ``raw/docs.jsonl`` (langchain-text-splitters 1.1.3 with the
same BERT tokenizer and chunk size 400/50 gives 1,371 chunks, 692 identical). `load_localrqa` therefore builds the
corpus from every distinct chunk that any split names as gold or hard negative (778 for faire: every gold passage
and its same-article neighbours), or reads a chunked documents file when one is given (it must then hold every gold
passage). Recall numbers on the 778-chunk corpus are not comparable to LocalRQA's tables.

A question id is ``<split>-<n>`` with n the position in the flattened question list; the _w_q and _w_qa files of a
split flatten to the same list (checked), so both give the same ids.
"""
from __future__ import annotations

import functools
import hashlib
import operator
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

from .errors import DataFormatError
from .jsonl import iter_jsonl, require
from .splits import TrainingQueries, assert_no_leak, without_overlap
from .types import Dataset, Document

SPLITS = ("train", "eval", "test")


@dataclass(frozen=True)
class Chunk:
    """One LocalRQA Document (a chunk of a help-centre article): what is embedded is `fmt_content`."""

    doc_id: str
    page_content: str
    fmt_content: str
    source: str
    title: str = ""
    seq_num: int | None = None  # line of the raw article it was cut from (LocalRQA's JSONLoader metadata)

    def to_document(self) -> Document:
        """The project's Document; its text_for_model is exactly LocalRQA's fmt_content."""
        return Document(self.doc_id, self.fmt_content, "")


@dataclass(frozen=True)
class QAExample:
    """One question with its gold passages (and, in _w_qa files, LocalRQA's gold answer)."""

    qid: str
    question: str
    gold_doc_ids: tuple[str, ...]
    hard_neg_doc_ids: tuple[str, ...] = ()
    gold_answer: str | None = None
    chat_history: tuple = ()
    line: int = 0  # line of the source file, for messages


@dataclass
class LocalRQAData:
    """A LocalRQA collection: its chunks and its train / eval / test questions."""

    name: str
    chunks: dict[str, Chunk]
    splits: dict[str, list[QAExample]] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)
    skipped: list[tuple[str, int, str, str]] = field(default_factory=list)  # (file, line, qid, why)

    def corpus(self) -> dict[str, Document]:
        return {d: c.to_document() for d, c in self.chunks.items()}

    def examples(self, split: str) -> list[QAExample]:
        if split not in self.splits:
            raise KeyError(f"{self.name} has no split {split!r}; it has {sorted(self.splits)}")
        return self.splits[split]

    def queries(self, split: str) -> dict[str, str]:
        return {ex.qid: ex.question for ex in self.examples(split)}

    def qrels(self, split: str) -> dict[str, dict[str, int]]:
        return {ex.qid: {d: 1 for d in ex.gold_doc_ids} for ex in self.examples(split)}

    def answers(self, split: str) -> dict[str, str]:
        return {ex.qid: ex.gold_answer for ex in self.examples(split) if ex.gold_answer is not None}

    def dataset(self, split: str) -> Dataset:
        """The split as the project's Dataset (corpus, queries, binary qrels from the gold passages)."""
        return Dataset(name=f"localrqa-{self.name}", split=split, corpus=self.corpus(), queries=self.queries(split),
                       qrels=self.qrels(split))

    def provenance(self, *splits: str) -> TrainingQueries:
        """TrainingQueries of some splits (training + checkpoint selection), for the leak guard."""
        if not splits:
            raise ValueError("provenance() needs at least one split")
        return functools.reduce(operator.or_, (TrainingQueries.of(f"localrqa-{self.name}/{split}", self.queries(split))
                                               for split in splits))

    def without_overlap(self, split: str, *others: str) -> list[QAExample]:
        """The examples of `split` whose question text is not a question of `others` (faire's train repeats one
        test and one eval question word for word)."""
        closed = {qid: text for other in others for qid, text in self.queries(other).items()}
        keep = without_overlap(self.queries(split), closed)
        return [ex for ex in self.examples(split) if ex.qid in keep]


# ---------------------------------------------------------------------------------------------- documents


def format_document(page_content: str, source: str = "", title: str = "") -> str:
    """LocalRQA's default_document_formatter: Source and Title lines (when present), then the content, stripped."""
    out = ""
    if source:
        out += f"Source: {source}\n"
    if title:
        out += f"Title: {title}\n"
    return (out + "Content:\n" + page_content).strip()


def doc_id_of(source: str, page_content: str) -> str:
    """Stable id of LocalRQA's document identity (source, page_content)."""
    return "d" + hashlib.sha1(f"{source}\x00{page_content}".encode("utf-8")).hexdigest()[:12]


def _chunk(obj, path, line: int, field_name: str) -> Chunk:
    """A document in either shape; errors name the file, the line and the field (e.g. gold_docs[0].metadata)."""
    if not isinstance(obj, dict):
        raise DataFormatError(path, line, field_name, f"expected a document object, got {type(obj).__name__}")
    if "page_content" in obj:
        content, content_field = obj["page_content"], "page_content"
        metadata = obj.get("metadata", {})
        if not isinstance(metadata, dict):
            raise DataFormatError(path, line, f"{field_name}.metadata", f"expected an object, got {type(metadata).__name__}")
        source, title = metadata.get("source", ""), metadata.get("title", "")
        seq = metadata.get("seq_num")
        fmt = obj.get("fmt_content") or None
    elif "text" in obj:
        content, source, title, seq, fmt = obj["text"], obj.get("source", ""), obj.get("title", ""), None, None
        content_field = "text"
    else:
        raise DataFormatError(path, line, field_name, "a document needs 'page_content' (chunk) or 'text' (raw document)")
    for name, value in ((content_field, content), ("source", source), ("title", title), ("fmt_content", fmt or "")):
        if not isinstance(value, str):
            raise DataFormatError(path, line, f"{field_name}.{name}", f"expected str, got {type(value).__name__}")
    if not content.strip():
        raise DataFormatError(path, line, field_name, "empty document content")
    if seq is not None and (not isinstance(seq, int) or isinstance(seq, bool)):
        raise DataFormatError(path, line, f"{field_name}.metadata.seq_num", f"expected an integer, got {seq!r}")
    return Chunk(doc_id_of(source, content), content, fmt or format_document(content, source, title), source,
                 title, seq)


def read_documents(path: str | os.PathLike, skipped: list | None = None) -> dict[str, Chunk]:
    """A documents JSONL file (raw {text,title,source} or chunked {page_content,metadata}), keyed by doc id.

    A document repeated with the same identity is kept once. A document with empty text (faire's raw/docs.jsonl
    has one, line 918) holds nothing to retrieve: it is skipped and reported in `skipped` as (file, line, why)."""
    chunks: dict[str, Chunk] = {}
    for line, obj in iter_jsonl(path):
        text = obj.get("page_content", obj.get("text"))
        if isinstance(text, str) and not text.strip():
            if skipped is not None:
                skipped.append((str(path), line, "empty document"))
            continue
        chunk = _chunk(obj, path, line, "(document)")
        chunks.setdefault(chunk.doc_id, chunk)
    if not chunks:
        raise DataFormatError(path, None, None, "no documents")
    return chunks


# ---------------------------------------------------------------------------------------------- questions


def _doc_list(obj: dict, name: str, path, line: int, required: bool) -> list[Chunk]:
    if name not in obj and not required:
        return []
    docs = require(obj, name, list, path, line)
    return [_chunk(d, path, line, f"{name}[{i}]") for i, d in enumerate(docs)]


def read_questions(path: str | os.PathLike, split: str,
                   skipped: list | None = None) -> tuple[list[QAExample], dict[str, Chunk]]:
    """A `*_w_q.jsonl` or `*_w_qa.jsonl` file: flattened examples (one per question) and every chunk they name.

    A line with `questions` (a list) is the _w_q shape; a line with `question` (a string) the _w_qa shape. An
    empty question string is skipped (its id is not reused) and reported in `skipped` as (file, line, qid, why):
    LocalRQA would train on it. Anything else malformed raises DataFormatError.
    """
    examples: list[QAExample] = []
    position = 0
    chunks: dict[str, Chunk] = {}
    for line, obj in iter_jsonl(path):
        gold = _doc_list(obj, "gold_docs", path, line, required=True)
        if not gold:
            raise DataFormatError(path, line, "gold_docs", "empty: every question needs at least one gold document")
        hard = _doc_list(obj, "hard_neg_docs", path, line, required=False)
        history = obj.get("chat_history", [])
        if not isinstance(history, list):
            raise DataFormatError(path, line, "chat_history", f"expected list, got {type(history).__name__}")
        if "questions" in obj:
            questions = require(obj, "questions", list, path, line)
            if not questions:
                raise DataFormatError(path, line, "questions", "empty list")
        elif "question" in obj:
            questions = [require(obj, "question", str, path, line)]
        else:
            raise DataFormatError(path, line, "questions", "missing ('questions' list or 'question' string)")
        for i, q in enumerate(questions):
            if not isinstance(q, str):
                raise DataFormatError(path, line, f"questions[{i}]" if "questions" in obj else "question",
                                      f"expected a string, got {type(q).__name__}")
        answer = require(obj, "gold_answer", str, path, line) if "gold_answer" in obj else None
        for chunk in (*gold, *hard):
            chunks.setdefault(chunk.doc_id, chunk)
        gold_ids = tuple(dict.fromkeys(c.doc_id for c in gold))
        hard_ids = tuple(dict.fromkeys(c.doc_id for c in hard if c.doc_id not in gold_ids))
        for q in questions:
            qid = f"{split}-{position}"
            position += 1
            if not q.strip():  # faire's train has one (the generator produced nothing); LocalRQA trains on it
                if skipped is not None:
                    skipped.append((str(path), line, qid, "empty question"))
                continue
            examples.append(QAExample(qid, q, gold_ids, hard_ids, answer, tuple(history), line))
    if not examples:
        raise DataFormatError(path, None, None, "no questions")
    return examples, chunks


def split_file(folder: str | os.PathLike, split: str, prefer: str = "w_qa") -> Path:
    """`<split>_w_qa.jsonl` (with answers) when present and preferred, else `<split>_w_q.jsonl`."""
    folder = Path(folder)
    names = [f"{split}_w_qa.jsonl", f"{split}_w_q.jsonl"]
    if prefer == "w_q":
        names.reverse()
    for name in names:
        if (folder / name).exists():
            return folder / name
    raise FileNotFoundError(f"{folder}: neither {names[0]} nor {names[1]}")


def load_localrqa(name: str = "faire", root: str | os.PathLike | None = None, splits: Iterable[str] = SPLITS,
                  documents: str | os.PathLike | None = None, prefer: str = "w_qa") -> LocalRQAData:
    """A LocalRQA example collection from `<data root>/localrqa/<name>/processed/` (see the module docstring for
    the corpus). `documents`: a chunked documents JSONL to use as the corpus instead; every gold passage must be
    in it (a missing one raises DataFormatError naming the question file and line)."""
    from ..paths import data_root

    base = data_root(root)
    if base is None:
        raise FileNotFoundError("no data root: pass root=, set $RERANK_DATA_DIR or put shared/data beside the project")
    folder = base / "localrqa" / name / "processed"
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} does not exist (LocalRQA's example/{name}/processed)")
    data = LocalRQAData(name=name, chunks={})
    named: dict[str, Chunk] = {}
    for split in splits:
        path = split_file(folder, split, prefer)
        examples, chunks = read_questions(path, split, skipped=data.skipped)
        data.splits[split], data.files[split] = examples, path
        for d, c in chunks.items():
            named.setdefault(d, c)
    if documents is None:
        data.chunks = dict(sorted(named.items(), key=lambda kv: (kv[1].seq_num or 0, kv[0])))
    else:
        doc_skips: list = []
        data.chunks = read_documents(documents, skipped=doc_skips)
        data.skipped += [(f, line, "", why) for f, line, why in doc_skips]
        for split, examples in data.splits.items():
            for ex in examples:
                missing = [d for d in ex.gold_doc_ids if d not in data.chunks]
                if missing:
                    raise DataFormatError(data.files[split], ex.line, "gold_docs",
                                          f"gold document {missing[0]} is not in the documents file {documents}")
    return data


@dataclass
class RetrieverSplits:
    """A LocalRQA collection as a retriever trains on it: train minus the questions that repeat an eval or test
    question word for word, eval (checkpoint and weight selection), test (evaluated once), the corpus and the
    passages an LM reader reads (page_content, LocalRQA's ctx text)."""

    raw: LocalRQAData
    train: list[QAExample]
    eval: Dataset
    test: Dataset
    provenance: TrainingQueries  # train + eval: closed to evaluation
    passages: dict[str, str]
    dropped_overlap: list[str]

    @property
    def corpus(self) -> dict[str, Document]:
        return self.eval.corpus

    def summary(self):
        """One row per split (a DataFrame); its attrs hold the reader's skipped lines and the dropped questions."""
        import pandas as pd

        rows = [{"split": "corpus (chunks)", "questions": None, "documents": len(self.corpus)},
                {"split": "train (used)", "questions": len(self.train), "documents": None},
                {"split": "eval (dev)", "questions": len(self.eval.queries), "documents": None},
                {"split": "test", "questions": len(self.test.queries), "documents": None}]
        frame = pd.DataFrame(rows).set_index("split")
        frame.attrs["skipped"] = self.raw.skipped
        frame.attrs["dropped_overlap"] = self.dropped_overlap
        return frame


def retriever_splits(raw: LocalRQAData, name: str, max_train: int | None = None, max_eval: int | None = None,
                     max_test: int | None = None, restrict_corpus: bool = False) -> RetrieverSplits:
    """`raw`'s splits as datasets named `name`, each cut to its first max_* questions; with `restrict_corpus`, the
    corpus is only the chunks those questions name (gold and hard negatives). Checks that no test question is a
    training or eval question."""
    clean = raw.without_overlap("train", "eval", "test")
    dropped = [ex.qid for ex in raw.examples("train") if ex not in clean]
    train = clean[: max_train] if max_train else clean
    evals = raw.examples("eval")[: max_eval] if max_eval else raw.examples("eval")
    tests = raw.examples("test")[: max_test] if max_test else raw.examples("test")
    chunks = raw.chunks
    if restrict_corpus:
        keep = {d for ex in (*train, *evals, *tests) for d in (*ex.gold_doc_ids, *ex.hard_neg_doc_ids)}
        chunks = {d: c for d, c in chunks.items() if d in keep}
    corpus = {d: c.to_document() for d, c in chunks.items()}

    def dataset(split, examples):
        return Dataset(name, split, corpus, {ex.qid: ex.question for ex in examples},
                       {ex.qid: {d: 1 for d in ex.gold_doc_ids} for ex in examples})

    provenance = (TrainingQueries.of(f"{name}/train", {ex.qid: ex.question for ex in train})
                  | TrainingQueries.of(f"{name}/eval", {ex.qid: ex.question for ex in evals}))
    data = RetrieverSplits(raw, train, dataset("eval", evals), dataset("test", tests), provenance,
                           {d: c.page_content for d, c in chunks.items()}, dropped)
    assert_no_leak([provenance], f"{name}/test", data.test.queries)
    return data


def file_splits(train_file: str | os.PathLike, eval_file: str | os.PathLike | None, test: RetrieverSplits, seed: int,
                max_train: int | None = None, max_eval: int | None = None) -> RetrieverSplits:
    """Your own LocalRQA question files as the training data (`*_w_q` / `*_w_qa` shape, the corpus: the chunks they
    name): train from `train_file`, eval from `eval_file` or a seeded slice of the train file's questions (a question
    repeated on two lines stays on one side); `test`'s test set (its own corpus) stays the test set."""
    from . import own_training

    skipped: list = []
    train, chunks = read_questions(own_training.existing(train_file), "train", skipped=skipped)
    files, evals = {"train": Path(train_file)}, []
    if eval_file:
        evals, more = read_questions(own_training.existing(eval_file), "eval", skipped=skipped)
        chunks, files["eval"] = {**chunks, **more}, Path(eval_file)
    # a test question word for word is dropped (SciFact-style repeats), before the dev slice is drawn
    kept = {**without_overlap({ex.qid: ex.question for ex in train}, test.test.queries),
            **without_overlap({ex.qid: ex.question for ex in evals}, test.test.queries)}
    dropped = [ex.qid for ex in (*train, *evals) if ex.qid not in kept]
    train, evals = [ex for ex in train if ex.qid in kept], [ex for ex in evals if ex.qid in kept]
    if not eval_file:
        train, evals = own_training.split_by_query(train, seed=seed, key=lambda ex: ex.question)
    train, evals = train[: max_train or None], evals[: max_eval or None]
    name = Path(train_file).name
    raw = LocalRQAData(name, chunks, {"train": train, "eval": evals}, files, skipped)
    corpus = {d: c.to_document() for d, c in chunks.items()}
    dev = Dataset(name, "eval", corpus, {ex.qid: ex.question for ex in evals},
                  {ex.qid: {d: 1 for d in ex.gold_doc_ids} for ex in evals})
    provenance = TrainingQueries.of(f"file:{name}", {ex.qid: ex.question for ex in (*train, *evals)})
    assert_no_leak([provenance], f"{test.test.name}/test", test.test.queries)
    return RetrieverSplits(raw, train, dev, test.test, provenance, {d: c.page_content for d, c in chunks.items()},
                           dropped)


def check_same_questions(w_q: str | os.PathLike, w_qa: str | os.PathLike, split: str) -> int:
    """The _w_qa file of a split flattens its _w_q file question for question (same text, same gold passages).

    Returns the number of questions; a difference raises DataFormatError naming the _w_qa line."""
    a, _ = read_questions(w_q, split, skipped=[])
    b, _ = read_questions(w_qa, split, skipped=[])
    if len(a) != len(b):
        raise DataFormatError(w_qa, None, "question", f"{len(b)} questions, but {w_q} has {len(a)}")
    for x, y in zip(a, b):
        if (x.qid, x.question, x.gold_doc_ids) != (y.qid, y.question, y.gold_doc_ids):
            raise DataFormatError(w_qa, y.line, "question", f"differs from {w_q} line {x.line}: {y.question!r}")
    return len(a)


def document_recall(run: Mapping[str, Mapping[str, float]], qrels: Mapping[str, Mapping[str, int]],
                    k: int) -> dict[str, float]:
    """LocalRQA's document recall@k per question (evaluation/metrics.DocumentRecall): 1 when ALL of the question's
    gold documents are among the top k retrieved, else 0. Ties are broken by doc id; a question missing from the
    run scores 0."""
    out = {}
    for qid, gold in qrels.items():
        relevant = {d for d, g in gold.items() if g > 0}
        ranked = sorted(run.get(qid, {}).items(), key=lambda kv: (-kv[1], kv[0]))[:k]
        top = {d for d, _ in ranked}
        out[qid] = float(bool(relevant) and relevant <= top)
    return out
