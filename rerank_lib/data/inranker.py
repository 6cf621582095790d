"""InRanker's soft-label files (Laitz et al., 2024; code: unicamp-dl/InRanker), one validating reader and one atomic
writer each; a bad line is a DataFormatError naming file, line and field (the package prints and skips it).

- stage 1, MS MARCO: tsv `true_logit \\t false_logit \\t qid \\t docid` (texts come from elsewhere: mMARCO online,
  a TREC DL candidate list offline);
- stage 2, custom: jsonl `{query, contents, true_logit, false_logit}` (plus our optional qid/docid).

Both carry the teacher's two first-step logits of monoT5 for a (query, document) pair: `DistillExample`;
`DistillDataset` holds them tokenised, as a training loop reads them.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from ..atomic import atomic_open
from ..paths import cache_dir
from .download import RemoteFile, download_files
from .errors import DataFormatError
from .jsonl import iter_jsonl, require, write_jsonl
from .lines import iter_lines
from .trec import ranked
from .types import Document, Run

#: The published soft-label files (Hugging Face datasets; md5 as checked by the inranker package).
INRANKER_FILES = {
    "msmarco": ("unicamp-dl/InRanker-msmarco", "InRanker_msmarco.tsv", "3fc9840ea2a8ad17966dec11c48872bf"),
    "beir": ("unicamp-dl/InRanker-BEIR", "inpars_beir_dataset.jsonl", "89d914af6d231a32458fcf84a8de61a6"),
}


def remote_file(which: str) -> RemoteFile:
    """The published file ('msmarco' or 'beir') as a plain HTTPS download: the hub's `resolve/main` URL, checked
    against the md5 the inranker package checks (no sha256 is published; a manifest may pin one)."""
    repo, filename, md5 = INRANKER_FILES[which]
    return RemoteFile(f"inranker/{filename}", f"https://huggingface.co/datasets/{repo}/resolve/main/{filename}",
                      sha256=None, md5=md5)
MSMARCO_MAX_EXAMPLES = 12_800_000  # the package stops reading the MS MARCO file there


@dataclass(frozen=True)
class DistillExample:
    """One (query, document) pair with the teacher's first-step logits."""

    query: str
    text: str
    false_logit: float
    true_logit: float
    qid: str = ""
    docid: str = ""

    @property
    def logits(self) -> tuple[float, float]:
        return self.false_logit, self.true_logit


@dataclass
class DistillDataset:
    """Distillation examples tokenised for training (by `InRankerTrainer.dataset`, the ranker's own input builder):
    item i is {'input_ids': [...], 'teacher_logits': [false, true]}."""

    examples: Sequence[DistillExample]
    input_ids: Sequence[list[int]]
    labels: np.ndarray  # [n, 2] float32, centred when `centered`
    centered: bool
    source: str = ""

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int) -> dict:
        return {"input_ids": self.input_ids[i], "teacher_logits": self.labels[i].tolist()}

    @property
    def lengths(self) -> list[int]:
        return [len(x) for x in self.input_ids]

    @property
    def query_texts(self) -> dict[str, str]:
        return {ex.qid or ex.query: ex.query for ex in self.examples}

    def summary(self) -> dict:
        margins = self.labels[:, 1] - self.labels[:, 0]
        return {"source": self.source, "pairs": len(self), "queries": len(self.query_texts),
                "centered": self.centered, "tokens_mean": round(float(np.mean(self.lengths)), 1),
                "margin_mean": round(float(margins.mean()), 3), "margin_std": round(float(margins.std()), 3),
                "P(true)_mean": round(float((1 / (1 + np.exp(-margins))).mean()), 4)}


def _finite(value, path, lineno: int, field: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise DataFormatError(path, lineno, field, f"not a number: {value!r}") from None
    if not math.isfinite(number):
        raise DataFormatError(path, lineno, field, f"not finite: {value!r}")
    return number


def read_custom_jsonl(path: str | os.PathLike) -> list[DistillExample]:
    """InRanker's custom distillation file: one JSON object per line with query, contents, true_logit, false_logit."""
    examples = []
    for lineno, obj in iter_jsonl(path):
        query = require(obj, "query", str, path, lineno)
        contents = require(obj, "contents", str, path, lineno)
        true_logit = _finite(require(obj, "true_logit", (int, float), path, lineno), path, lineno, "true_logit")
        false_logit = _finite(require(obj, "false_logit", (int, float), path, lineno), path, lineno, "false_logit")
        examples.append(DistillExample(query, contents, false_logit, true_logit,
                                       str(obj.get("qid", "")), str(obj.get("docid", ""))))
    if not examples:
        raise DataFormatError(path, None, None, "no examples")
    return examples


def write_custom_jsonl(path: str | os.PathLike, examples: Iterable[DistillExample], with_ids: bool = True) -> Path:
    """Write examples in the custom format (atomically); `with_ids` adds qid/docid, which the package ignores."""
    def rows():
        for ex in examples:
            row = {"query": ex.query, "contents": ex.text, "true_logit": ex.true_logit, "false_logit": ex.false_logit}
            if with_ids:
                row.update(qid=ex.qid, docid=ex.docid)
            yield row
    return write_jsonl(path, rows())


def soft_label_examples(teacher: Run, calibration, queries: Mapping[str, str],
                        corpus: Mapping[str, Document]) -> list[DistillExample]:
    """One DistillExample per scored (query, document) of `teacher`, its two logits from `calibration` (a
    teacher.Calibration: `logits(score) -> (false, true)`)."""
    out = []
    for qid, docs in teacher.items():
        for docid, s in ranked(docs):
            f, t = calibration.logits(s)
            out.append(DistillExample(queries[qid], corpus[docid].text_for_model, float(f), float(t), qid, docid))
    return out


def read_msmarco_soft_labels(path: str | os.PathLike, queries: Mapping[str, str], corpus: Mapping[str, object],
                             max_examples: int = MSMARCO_MAX_EXAMPLES) -> list[DistillExample]:
    """The MS MARCO soft-label tsv: `true_logit \\t false_logit \\t qid \\t docid` per line (the package calls the
    first two positive_score and negative_score and trains on [negative, positive] = [false, true]).

    `queries` maps qid -> text; `corpus` maps docid -> text or Document. A missing id is a DataFormatError.
    """
    examples = []
    for lineno, line in iter_lines(path):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != 4:
            raise DataFormatError(path, lineno, None, f"expected 4 tab-separated fields (true_logit, false_logit, "
                                                      f"qid, docid), got {len(parts)}")
        true_logit = _finite(parts[0], path, lineno, "true_logit")
        false_logit = _finite(parts[1], path, lineno, "false_logit")
        qid, docid = parts[2].strip(), parts[3].strip()
        if qid not in queries:
            raise DataFormatError(path, lineno, "qid", f"query {qid!r} has no text")
        if docid not in corpus:
            raise DataFormatError(path, lineno, "docid", f"document {docid!r} has no text")
        doc = corpus[docid]
        text = doc.text_for_model if isinstance(doc, Document) else str(doc)
        examples.append(DistillExample(queries[qid], text, false_logit, true_logit, qid, docid))
        if len(examples) >= max_examples:
            break
    if not examples:
        raise DataFormatError(path, None, None, "no examples")
    return examples


def write_msmarco_soft_labels(path: str | os.PathLike, examples: Iterable[DistillExample]) -> Path:
    """Write `true_logit \\t false_logit \\t qid \\t docid` lines atomically."""
    path = Path(path)
    with atomic_open(path, "w") as handle:
        for ex in examples:
            if not ex.qid or not ex.docid:
                raise ValueError("the MS MARCO format needs qid and docid on every example")
            handle.write(f"{ex.true_logit!r}\t{ex.false_logit!r}\t{ex.qid}\t{ex.docid}\n")
    return path


def published_file(which: str, dest_root: str | os.PathLike | None = None) -> Path:
    """The published soft-label file ('msmarco' or 'beir') in the download cache (`dest_root`, default the data
    cache), fetched once by the same code as every dataset: md5-checked before it lands, mirror-able through
    $RERANK_DOWNLOAD_MIRROR, pinned by $RERANK_DOWNLOAD_MANIFEST.

    Why not huggingface_hub's hf_hub_download (used before): one download path for every file means the path
    the tests run (a local mirror) is the path users run; these are two public, fixed files, so the hub
    client's extras (tokens, revalidation) buy nothing, and a plain URL works behind any HTTP mirror."""
    return download_files([remote_file(which)], cache_dir("data") if dest_root is None else dest_root)[0]


MMARCO = "https://huggingface.co/datasets/unicamp-dl/mmarco/resolve/main/data/google"


def mmarco_files(language: str) -> list[RemoteFile]:
    """mMARCO's collection and train queries in `language` (`id \\t text` tsv files, the ones the dataset's loading
    script reads), as plain downloads; md5 from ir_datasets' download registry where it lists the file (its mMARCO v2
    languages; not English, which is MS MARCO itself), else unpinned and format-checked by the reader."""
    files = [(f"{language}_collection.tsv", f"{MMARCO}/collections/{language}_collection.tsv"),
             (f"{language}_queries.train.tsv", f"{MMARCO}/queries/train/{language}_queries.train.tsv")]
    return [RemoteFile(f"mmarco/{name}", url, sha256=None, md5=_irds_md5(url)) for name, url in files]


def _irds_md5(url: str) -> str | None:
    import json

    import ir_datasets

    registry = Path(ir_datasets.__file__).parent / "etc" / "downloads.json"
    entries = json.loads(registry.read_text(encoding="utf-8")).get("mmarco", {}) if registry.exists() else {}
    return next((e.get("expected_md5") for e in entries.values() if e.get("url") == url), None)


def soft_label_ids(path: str | os.PathLike, max_examples: int = MSMARCO_MAX_EXAMPLES) -> tuple[set[str], set[str]]:
    """The query and document ids of the first `max_examples` lines of an MS MARCO soft-label tsv: the texts to keep
    when reading mMARCO (its English collection alone has 8.8M passages)."""
    qids, docids, seen = set(), set(), 0
    for _, line in iter_lines(path):
        parts = line.split("\t")
        if len(parts) != 4:  # blank or malformed: read_msmarco_soft_labels names it
            continue
        qids.add(parts[2].strip())
        docids.add(parts[3].strip())
        seen += 1
        if seen >= max_examples:
            break
    return qids, docids


def read_id_texts(path: str | os.PathLike, keep: set[str] | None = None) -> dict[str, str]:
    """An `id \\t text` tsv (mMARCO's collections and queries) as {id: text}, only the ids in `keep` when given."""
    texts = {}
    for lineno, line in iter_lines(path):
        if not line.strip():
            continue
        ident, sep, text = line.partition("\t")
        if not sep:
            raise DataFormatError(path, lineno, None, "expected `id <tab> text`")
        ident = ident.strip()
        if keep is None or ident in keep:
            texts[ident] = text.rstrip("\n")
    return texts


def mmarco_texts(language: str, queries=None, corpus=None, qids: set[str] | None = None,
                 docids: set[str] | None = None, dest_root: str | os.PathLike | None = None):
    """mMARCO train queries and collection in `language` (the texts the package reads for stage 1), downloaded
    once by the same code as every dataset; only `qids` / `docids` kept when given; a mapping given is kept."""
    if queries is not None and corpus is not None:
        return queries, corpus
    collection, train_queries = download_files(mmarco_files(language),
                                               cache_dir("data") if dest_root is None else dest_root)
    if corpus is None:
        corpus = read_id_texts(collection, docids)
    if queries is None:
        queries = read_id_texts(train_queries, qids)
    return queries, corpus
