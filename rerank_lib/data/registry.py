"""Named datasets: where each lives under the data root, how to load a split, and where to download it.

`load_dataset("scifact", "test")` is the one call notebooks use. It looks under the data root (parameter,
$RERANK_DATA_DIR, ../shared/data), then under the download cache, and downloads from the official public
locations (sha256-verified) only when neither has the files.

Any other name is tried as an `ir_datasets` id (`load_dataset("beir/nfcorpus/test")`, or
`load_dataset("beir/nfcorpus", "test")`): ir_datasets reads its files from $IR_DATASETS_HOME or downloads them.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..paths import cache_dir, data_root
from .beir import load_beir
from .download import RemoteFile, download_files
from .hopweaver import SPLIT_FILES as HOPWEAVER_FILES, load_hopweaver
from .rankgpt import read_rankgpt
from .trec import read_qrels, read_run, read_topics
from .types import Dataset

_BEIR = "https://public.ukp.informatik.tu-darmstadt.de/thakur/BEIR/datasets"
_ANSERINI = "https://raw.githubusercontent.com/castorini/anserini-tools/5b819c1a45c8a0a3ec9426f476694f44a29dfaf3/topics-and-qrels"
_RANKLLM = "https://raw.githubusercontent.com/castorini/rank_llm/97f5fc162a4c6d664d14b1b930d56a6c759faf3a/retrieve_results/BM25"


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    folder: str  # relative to the data root
    splits: tuple[str, ...]
    required: tuple[str, ...]  # files (relative to folder) that must exist; any of "a|b" alternatives
    loader: Callable[[Path, str, str], Dataset]
    remote: tuple[RemoteFile, ...] = field(default=())
    family: str = "beir"  # selects default measures: 'beir', 'trec-dl' or 'candidates' (given candidates per query)


def _load_trec_dl(folder: Path, split: str, name: str) -> Dataset:
    """TREC DL passage: topics + graded qrels + the BM25 top-100 with text (the only passages we have)."""
    topics = read_topics(folder / "topics.tsv")
    qrels = read_qrels(folder / "qrels.txt")
    cand_queries, run, passages = read_rankgpt(folder / "bm25_top100_with_text.json")
    trec_run = folder / "bm25_top100.trec"
    if trec_run.exists():  # the official scores and ranks; the json carries the same lists
        run = read_run(trec_run)
    queries = {q: topics.get(q, cand_queries.get(q, "")) for q in qrels}
    return Dataset(name=name, split=split, corpus=passages, queries=queries, qrels=qrels, runs={"bm25": run})


def _dl_remote(year: str, tag: str) -> tuple[RemoteFile, ...]:
    sha = {
        "19": ("518992da259fb61f64e4790791df91a7b42ea5773f374aed59220ebb51d58d90", "8a1f10d550732e4cd91d7fc49846a3784de4040972f583e69285a88f3c5fee92",
               "4f3e4aba8bb68c1b38405da010f44537f31d3b5fff7088ef97c03caed1076674", "cbada2e4f710f8cafb8f1fd54e2289011b3273cdc044adb2380af21f63a6c861"),
        "20": ("726cb4018b85a335fcbe09004df7f084ec1bf20531961d9af7b0c71dd609e69b", "60d4c34561f9687f8f73e0a752ba80ab80159b3e9c1bedd0a351f747ed6f5684",
               "68b0ea4515ea022de921d54d5a53b4e93ed2f2993d350323c3173e47f3cea9f0", "fba5d55aa8335bd1c74f7860dee354e69986b627c640b34ba47e084e311c24d2"),
    }[year]
    base = f"msmarco-passage/trec-dl-20{year}"
    topics_name = "topics.dl19-passage.txt" if year == "19" else "topics.dl20.txt"
    return (
        RemoteFile(f"{base}/topics.tsv", f"{_ANSERINI}/{topics_name}", sha[0]),
        RemoteFile(f"{base}/qrels.txt", f"{_ANSERINI}/qrels.{tag}-passage.txt", sha[1]),
        RemoteFile(f"{base}/bm25_top100_with_text.json", f"{_RANKLLM}/retrieve_results_{tag}.json", sha[2]),
        RemoteFile(f"{base}/bm25_top100.trec", f"{_RANKLLM}/trec_results_{tag}.txt", sha[3]),
    )


DATASETS: dict[str, DatasetSpec] = {
    "scifact": DatasetSpec(
        name="scifact", folder="beir/scifact", splits=("train", "test"),
        required=("corpus.jsonl|corpus.jsonl.gz", "queries.jsonl", "qrels/test.tsv"), loader=load_beir,
        remote=(
            RemoteFile("beir/scifact/corpus.jsonl", f"{_BEIR}/scifact.zip", "dec31c8182f3d744c7d2c09423756fd1d17cbef75808db13ba01cc0aab4d1ac6", "scifact/corpus.jsonl"),
            RemoteFile("beir/scifact/queries.jsonl", f"{_BEIR}/scifact.zip", "8ff84a7c903f722981cd8d595c022660140c51867b27608a6d4910db86080313", "scifact/queries.jsonl"),
            RemoteFile("beir/scifact/qrels/train.tsv", f"{_BEIR}/scifact.zip", "a53f2114831916c096b6c37d9e54da68cef4efdcdbd5ed46533601af972acf1d", "scifact/qrels/train.tsv"),
            RemoteFile("beir/scifact/qrels/test.tsv", f"{_BEIR}/scifact.zip", "0864bb985e0ca2367ba217977e72004d549054b2b06666ed9d4825ac7c21284c", "scifact/qrels/test.tsv"),
        ),
    ),
    "trec-dl-2019": DatasetSpec(
        name="trec-dl-2019", folder="msmarco-passage/trec-dl-2019", splits=("test",),
        required=("topics.tsv", "qrels.txt", "bm25_top100_with_text.json"), loader=_load_trec_dl,
        remote=_dl_remote("19", "dl19"), family="trec-dl",
    ),
    "trec-dl-2020": DatasetSpec(
        name="trec-dl-2020", folder="msmarco-passage/trec-dl-2020", splits=("test",),
        required=("topics.tsv", "qrels.txt", "bm25_top100_with_text.json"), loader=_load_trec_dl,
        remote=_dl_remote("20", "dl20"), family="trec-dl",
    ),
    # HopWeaver's published reranker pairs (Zh1yuShen/HopWeaver, hopweaver/train_reranker/data; MIT): no download,
    # the files sit under the data root
    "hopweaver": DatasetSpec(
        name="hopweaver", folder="hopweaver", splits=tuple(HOPWEAVER_FILES),
        required=tuple(HOPWEAVER_FILES.values()), loader=load_hopweaver, family="candidates",
    ),
}


def _has_files(folder: Path, required: tuple[str, ...]) -> bool:
    return folder.is_dir() and all(any((folder / alt).exists() for alt in req.split("|")) for req in required)


def locate(name: str, root: str | os.PathLike | None = None, download: bool = True) -> Path:
    """The folder of a named dataset: under the data root, else in the download cache (downloading if allowed)."""
    spec = spec_of(name)
    base = data_root(root)
    if base is not None and _has_files(base / spec.folder, spec.required):
        return base / spec.folder
    cached = cache_dir("data")
    if _has_files(cached / spec.folder, spec.required):
        return cached / spec.folder
    if not download or not spec.remote:
        raise FileNotFoundError(
            f"dataset '{name}' not found under {base or '(no data root)'}/{spec.folder} nor in {cached}; "
            "set $RERANK_DATA_DIR or pass data_root=..."
        )
    download_files(list(spec.remote), cached)
    return cached / spec.folder


def spec_of(name: str) -> DatasetSpec:
    if name not in DATASETS:
        raise KeyError(f"unknown dataset '{name}'; known: {', '.join(sorted(DATASETS))}")
    return DATASETS[name]


def load_dataset(name: str, split: str | None = None, root: str | os.PathLike | None = None,
                 download: bool = True) -> Dataset:
    """Load one split of a built-in dataset (see DATASETS; split defaults to 'test') or an ir_datasets id
    (`name` alone, or `name/split`; the Dataset's key is the id). ir_datasets manages its own files, so
    download=False is refused for those names rather than ignored."""
    if name in DATASETS:
        spec = spec_of(name)
        split = split or "test"
        if split not in spec.splits:
            raise KeyError(f"dataset '{name}' has splits {spec.splits}, not '{split}'")
        return spec.loader(locate(name, root, download), split, name)
    from .irds import is_ir_datasets_id, load_ir_dataset

    dataset_id = f"{name}/{split}" if split else name
    if not is_ir_datasets_id(dataset_id):
        raise KeyError(f"unknown dataset '{dataset_id}': neither a built-in ({', '.join(sorted(DATASETS))}) nor an "
                       f"ir_datasets id (https://ir-datasets.com, e.g. 'beir/nfcorpus/test')")
    if not download:
        raise ValueError(f"'{dataset_id}' is an ir_datasets id: ir_datasets fetches its own files into "
                         "$IR_DATASETS_HOME, so download=False cannot be honoured for it")
    return load_ir_dataset(dataset_id)
