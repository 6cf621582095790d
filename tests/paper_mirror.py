"""A local HTTP mirror of every remote file a `paper` profile reads, for tests and the paper-tiny notebook runs.

The files are small (a few dozen records each) but in the REAL formats, cut from the shared data samples:
- BEIR SciFact: `scifact.zip` (corpus.jsonl, queries.jsonl, qrels/{train,test}.tsv) from the BEIR server;
- TREC DL 2019 / 2020: anserini topics and qrels, rank_llm's BM25 top-100 (RankGPT json + TREC run), cut to
  the first queries and their top hits;
- InRanker's soft labels: the MS MARCO tsv (stage 1, DL19 ids) and the BEIR jsonl (stage 2: synthetic queries written from
  SciFact documents, never a test claim); mMARCO's English collection and train queries (`id \t text`);
- RankZephyr's training data: ShareGPT records rendered with RankZephyr's template from rank_llm's sample of
  MS MARCO train queries and their ADA2 candidates (real queries and passages; the answers are seeded
  permutations, as no teacher order ships with the sample), full windows and renumbered subsets like the
  published augmentation.

`PaperMirror` serves them from a thread on 127.0.0.1 under the same URL paths as the real files (the layout
`download.mirrored` builds), and writes a manifest of their sha256, so the real download code checks real
hashes of the modified files. `env` is what to pass to papermill (or `monkeypatch.setenv`):

    with PaperMirror(shared_data, workdir) as mirror:
        run_notebook(..., env=mirror.env)

or, in a test module, `from paper_mirror import paper_mirror` and take the `paper_mirror` fixture.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import random
import threading
import urllib.parse
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from rerank_lib.data.download import RemoteFile
from rerank_lib.data.inranker import mmarco_files, remote_file as inranker_file
from rerank_lib.data.rank_zephyr import RANK_ZEPHYR_FILE
from rerank_lib.data.registry import DATASETS
from rerank_lib.listwise.prompts import RANK_ZEPHYR, build_messages, format_ranking

DL_QUERIES, DL_HITS = 5, 20
SCIFACT_QUERIES, SCIFACT_EXTRA_DOCS = 10, 30


def paper_remote_files() -> list[RemoteFile]:
    """Every remote file a paper profile reads: the registry's datasets, InRanker's two soft-label files and
    RankZephyr's training data."""
    files = [spec for ds in DATASETS.values() for spec in ds.remote]
    return files + [inranker_file("msmarco"), inranker_file("beir"), RANK_ZEPHYR_FILE, *mmarco_files("english")]


def _lines(path: Path) -> list[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        return handle.read().splitlines()


def _dl_files(shared: Path, year: str) -> dict[str, bytes]:
    """{file name under msmarco-passage/trec-dl-20YY: bytes}: the first DL_QUERIES judged queries, their
    top DL_HITS BM25 hits, the judgments of those hits."""
    folder = shared / "msmarco-passage" / f"trec-dl-20{year}"
    ranked = json.loads((folder / "bm25_top100_with_text.json").read_text(encoding="utf-8"))[:DL_QUERIES]
    for entry in ranked:
        entry["hits"] = entry["hits"][:DL_HITS]
    qids = {str(entry["hits"][0]["qid"]) for entry in ranked}  # rank_llm's json stores qids as numbers
    kept = {(str(h["qid"]), str(h["docid"])) for entry in ranked for h in entry["hits"]}
    topics = [line for line in _lines(folder / "topics.tsv") if line.split("\t")[0] in qids]
    qrels = [line for line in _lines(folder / "qrels.txt") if tuple(line.split()[0:3:2]) in kept]
    run = [line for line in _lines(folder / "bm25_top100.trec") if tuple(line.split()[0:3:2]) in kept]
    text = lambda lines: ("\n".join(lines) + "\n").encode("utf-8")  # noqa: E731
    return {"topics.tsv": text(topics), "qrels.txt": text(qrels), "bm25_top100.trec": text(run),
            "bm25_top100_with_text.json": json.dumps(ranked).encode("utf-8")}


def _scifact_members(shared: Path) -> dict[str, bytes]:
    """{member of scifact.zip: bytes}: SCIFACT_QUERIES judged queries of each split, their judged documents and
    SCIFACT_EXTRA_DOCS more (BEIR's own files, lines kept verbatim)."""
    folder = shared / "beir" / "scifact"
    members, qids, docids = {}, set(), set()
    for split in ("train", "test"):
        header, *rows = _lines(folder / "qrels" / f"{split}.tsv")
        chosen = sorted({r.split("\t")[0] for r in rows}, key=lambda q: int(q))[:SCIFACT_QUERIES]
        rows = [r for r in rows if r.split("\t")[0] in chosen]
        qids.update(chosen)
        docids.update(r.split("\t")[1] for r in rows)
        members[f"scifact/qrels/{split}.tsv"] = ("\n".join([header, *rows]) + "\n").encode("utf-8")
    corpus = _lines(folder / "corpus.jsonl.gz")
    extra = {json.loads(line)["_id"] for line in corpus[:SCIFACT_EXTRA_DOCS]}
    members["scifact/corpus.jsonl"] = "".join(
        line + "\n" for line in corpus if json.loads(line)["_id"] in docids | extra).encode("utf-8")
    members["scifact/queries.jsonl"] = "".join(
        line + "\n" for line in _lines(folder / "queries.jsonl") if json.loads(line)["_id"] in qids).encode("utf-8")
    return members


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            archive.writestr(info, data, zipfile.ZIP_DEFLATED)
    return buffer.getvalue()


def _logits(grade: int, salt: str) -> tuple[float, float]:
    """(true, false) first-step logits of a stand-in monoT5 teacher: higher for higher grades, a seeded jitter."""
    jitter = random.Random(salt).uniform(-0.5, 0.5)
    true = round(-3.0 + 2.0 * grade + jitter, 4)
    return true, round(-true, 4)


def _inranker_msmarco(dl19: dict[str, bytes]) -> bytes:
    """`true_logit \\t false_logit \\t qid \\t docid` for the served DL19 hits (texts come from that list)."""
    grades = {tuple(line.split()[0:3:2]): int(line.split()[3]) for line in dl19["qrels.txt"].decode().splitlines()}
    rows = []
    for entry in json.loads(dl19["bm25_top100_with_text.json"]):
        for hit in entry["hits"][:8]:
            qid, docid = str(hit["qid"]), str(hit["docid"])
            true, false = _logits(grades.get((qid, docid), 0), qid + docid)
            rows.append(f"{true}\t{false}\t{qid}\t{docid}\n")
    return "".join(rows).encode("utf-8")


def _mmarco_english(dl19: dict[str, bytes]) -> tuple[bytes, bytes]:
    """mMARCO's English collection and train queries (`id \\t text`) holding the served DL19 hits' texts, which
    the stand-in MS MARCO soft labels point to."""
    docs, queries = {}, {}
    for entry in json.loads(dl19["bm25_top100_with_text.json"]):
        for hit in entry["hits"]:
            docs[str(hit["docid"])] = " ".join(hit["content"].split())
            queries[str(hit["qid"])] = " ".join(entry["query"].split())
    tsv = lambda rows: "".join(f"{k}\t{v}\n" for k, v in sorted(rows.items())).encode("utf-8")  # noqa: E731
    return tsv(docs), tsv(queries)


def _inranker_beir(members: dict[str, bytes]) -> bytes:
    """{query, contents, true_logit, false_logit} as InRanker's BEIR file: synthetic queries written from corpus
    documents (InPars-v1), here a document's title as its query, each with that document and two others. Never
    a SciFact test claim: the leak check rightly refuses a file that holds one."""
    docs = [json.loads(line) for line in members["scifact/corpus.jsonl"].decode().splitlines()]
    claims = {" ".join(json.loads(line)["text"].lower().split())
              for line in members["scifact/queries.jsonl"].decode().splitlines()}
    rows = []
    for i, doc in enumerate(docs[:SCIFACT_QUERIES]):
        query = f"what does the study on {doc['title'].rstrip('.').lower()} find"
        assert " ".join(query.split()) not in claims
        for other, grade in [(doc, 1)] + [(docs[(i + k) % len(docs)], 0) for k in (1, 2)]:
            true, false = _logits(grade, doc["_id"] + other["_id"])
            text = f"{other['title']} {other['text']}".strip()
            rows.append({"query": query, "contents": text, "true_logit": true, "false_logit": false})
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")


def rank_zephyr_records(shared: Path, per_query: int = 12, seed: int = 7) -> list[dict]:
    """ShareGPT records in RankZephyr's format (numeric identifiers, as castorini's file) from rank_llm's sample
    of MS MARCO train queries: per query the full 20-passage window and `per_query - 1` renumbered subsets."""
    sample = shared / "rank_llm" / "train_candidates_sample" / "retrieve_results_train_random_n2.json"
    rng = random.Random(seed)
    records = []
    for entry in json.loads(sample.read_text(encoding="utf-8")):
        passages = [h["content"] for h in entry["hits"][:20]]
        for j in range(per_query):
            subset = list(range(len(passages))) if j == 0 else sorted(rng.sample(range(len(passages)),
                                                                                  rng.randint(2, len(passages))))
            order = rng.sample(range(len(subset)), len(subset))
            system, user = build_messages(entry["query"], [("", passages[i]) for i in subset], RANK_ZEPHYR, 300)
            records.append({"id": f"{entry['hits'][0]['qid']}-{j}", "conversations": [
                {"from": "system", "value": system["content"]}, {"from": "human", "value": user["content"]},
                {"from": "gpt", "value": format_ranking(order, alpha=False)}]})
    return records


def build_paper_files(shared: Path) -> dict[str, bytes]:
    """{official URL: bytes} for every file of `paper_remote_files()`."""
    by_url: dict[str, bytes] = {}
    dl19 = None
    for year in ("19", "20"):
        files = _dl_files(shared, year)
        dl19 = dl19 or files
        for spec in DATASETS[f"trec-dl-20{year}"].remote:
            by_url[spec.url] = files[Path(spec.path).name]
    members = _scifact_members(shared)
    by_url[DATASETS["scifact"].remote[0].url] = _zip(members)
    by_url[inranker_file("msmarco").url] = _inranker_msmarco(dl19)
    by_url[inranker_file("beir").url] = _inranker_beir(members)
    collection, queries = mmarco_files("english")
    by_url[collection.url], by_url[queries.url] = _mmarco_english(dl19)
    records = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rank_zephyr_records(shared))
    by_url[RANK_ZEPHYR_FILE.url] = gzip.compress(records.encode("utf-8"), mtime=0)
    missing = {spec.url for spec in paper_remote_files()} - set(by_url)
    assert not missing, f"the mirror lacks {sorted(missing)}"
    return by_url


def manifest_for(files: dict[str, bytes]) -> dict[str, str]:
    """{key: sha256} for every served file, and for every member of a served zip (key `url::member`)."""
    table = {url: hashlib.sha256(data).hexdigest() for url, data in files.items()}
    for url, data in files.items():
        if url.endswith(".zip"):
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                for name in archive.namelist():
                    table[f"{url}::{name}"] = hashlib.sha256(archive.read(name)).hexdigest()
    return table


def _mirror_path(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return "/" + parts.netloc + parts.path


class PaperMirror:
    """Serves `files` ({official URL: bytes}) on 127.0.0.1 under `/<host>/<path>`; a URL in `cut` is sent with
    its full Content-Length but only half its bytes before the connection closes; anything else is a 404."""

    def __init__(self, shared: Path, workdir: Path, files: dict[str, bytes] | None = None):
        self.files = dict(files if files is not None else build_paper_files(Path(shared)))
        self.cut: set[str] = set()
        self.workdir = Path(workdir)
        self.requests: list[str] = []
        self._server: ThreadingHTTPServer | None = None

    def __enter__(self) -> "PaperMirror":
        served = {_mirror_path(url): url for url in self.files}
        mirror = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                mirror.requests.append(self.path)
                url = served.get(self.path)
                if url is None:
                    self.send_error(404)
                    return
                data = mirror.files[url]
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[: len(data) // 2] if url in mirror.cut else data)
                if url in mirror.cut:
                    self.close_connection = True

            def log_message(self, *args):  # quiet
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.manifest_path.write_text(json.dumps(manifest_for(self.files), indent=1, sort_keys=True))
        return self

    def __exit__(self, *exc) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def manifest_path(self) -> Path:
        return self.workdir / "download-manifest.json"

    @property
    def env(self) -> dict[str, str]:
        """The environment a run needs to download from this mirror (papermill: pass it to the kernel)."""
        return {"RERANK_DOWNLOAD_MIRROR": self.base_url, "RERANK_DOWNLOAD_MANIFEST": str(self.manifest_path)}


@pytest.fixture()
def paper_mirror(shared_data, tmp_path):
    """A running PaperMirror (its `env` not applied: pass it to the run, or monkeypatch.setenv each item)."""
    with PaperMirror(shared_data, tmp_path / "paper-mirror") as mirror:
        yield mirror
