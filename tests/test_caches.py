"""Damaged caches are never trusted: each cache file is written with its sha256 and length and checked on read; a
cut or damaged file (or one written before checksums) is recomputed, with one warning line naming it. And each
input cache's key names the version of the code that produced it."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rerank_lib import code_version as cv
from rerank_lib.atomic import (
    CacheWarning, atomic_cache_open, checksum_path, checksum_problem, folder_problem, trusted_cache_file,
    write_checksum, write_folder_checksums,
)
from rerank_lib.data.types import Document

pytestmark = pytest.mark.usefixtures("private_cache")

CORPUS = {
    "cat": Document("cat", "The cat sat on the warm mat all afternoon.", "Cats"),
    "dog": Document("dog", "Dogs love running in the park with their owners.", "Dogs"),
    "bake": Document("bake", "Bake the bread at 220 degrees until the crust is golden.", "Baking"),
    "qm": Document("qm", "Quantum mechanics describes physics at the scale of atoms.", "Physics"),
}
QUERIES = {"q1": "where did the cat sit", "q2": "how to bake bread", "q3": "physics of atoms"}
RUN = {"q1": {"bake": 3.0, "dog": 2.0, "cat": 1.0}, "q2": {"qm": 2.0, "bake": 1.0, "cat": 0.2},
       "q3": {"qm": 1.0, "dog": 0.5}}


def cut_at_a_line_break(path: Path, keep_lines: int) -> None:
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    path.write_text("".join(lines[:keep_lines]), encoding="utf-8")


def flip_bytes_at_the_end(path: Path, n: int = 64) -> None:
    """Same-size damage: the last `n` bytes inverted (for an .npy: the end of the array data)."""
    data = bytearray(path.read_bytes())
    data[-n:] = bytes(b ^ 0xFF for b in data[-n:])
    path.write_bytes(bytes(data))


@pytest.fixture()
def edited(monkeypatch):
    """edited(file): the hashed source of `file` (relative to the package) stands for an edited version."""
    original = cv.read_source

    def apply(relative: str):
        target = cv.PACKAGE_ROOT / relative
        monkeypatch.setattr(cv, "read_source", lambda p: original(p) + (b"\n# edited\n" if Path(p) == target else b""))
        cv.clear_cache()

    yield apply
    cv.clear_cache()


# ---- the checksum sidecar ----------------------------------------------------------------------------------------

def test_a_cache_file_carries_its_sha256_and_length_and_damage_is_found(tmp_path):
    path = tmp_path / "x.bin"
    with atomic_cache_open(path, "wb") as handle:
        handle.write(b"abc")
    # sha256("abc"), 3 bytes
    assert checksum_path(path).read_text() == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad 3\n"
    assert checksum_problem(path) is None and trusted_cache_file(path)
    path.write_bytes(b"ab")
    assert "2 bytes where x.bin.sha256 says 3" in checksum_problem(path)
    path.write_bytes(b"abd")
    assert "sha256 differs" in checksum_problem(path)
    with pytest.warns(CacheWarning, match=r"cache file .*x\.bin: .*not used, recomputing"):
        assert not trusted_cache_file(path)
    assert not path.exists() and not checksum_path(path).exists()  # removed, so it is recomputed
    path.write_bytes(b"abc")  # a file from before checksums: not trusted either
    with pytest.warns(CacheWarning, match="no checksum file"):
        assert not trusted_cache_file(path)


def test_a_folder_lists_its_files_checksums(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.txt").write_text("hello")
    (tmp_path / "sub" / "b.bin").write_bytes(b"\x00" * 10)
    write_folder_checksums(tmp_path)
    assert folder_problem(tmp_path) is None
    (tmp_path / "sub" / "b.bin").write_bytes(b"\x00" * 9)
    assert folder_problem(tmp_path) == "sub/b.bin has 9 bytes where checksums.sha256 says 10 (truncated or appended to)"
    (tmp_path / "sub" / "b.bin").unlink()
    assert folder_problem(tmp_path) == "sub/b.bin is missing"


# ---- teacher scores ----------------------------------------------------------------------------------------------

def test_a_teacher_score_file_cut_at_a_line_break_is_recomputed(private_cache):
    """The finding: a cut file was read as complete (6 teacher records rewritten wrong, then `KeyError: '12'`)."""
    from rerank_lib.teacher import teacher_scores

    first = teacher_scores("minilm-l6", RUN, CORPUS, QUERIES, depth=3)
    (path,) = (private_cache / "teacher").glob("*.trec")
    cut_at_a_line_break(path, keep_lines=4)  # q1's three lines and one of q2's: a valid, shorter run
    with pytest.warns(CacheWarning, match=path.name):
        again = teacher_scores("minilm-l6", RUN, CORPUS, QUERIES, depth=3)
    assert again == first and sum(map(len, again.values())) == 8
    assert checksum_problem(path) is None  # rewritten with its checksum
    cut_at_a_line_break(path, keep_lines=7)
    write_checksum(path)  # even a cut file whose sidecar matches is not read as complete
    with pytest.warns(CacheWarning, match="scores fewer candidates"):
        assert teacher_scores("minilm-l6", RUN, CORPUS, QUERIES, depth=3) == first


def test_teacher_scores_of_older_code_are_not_reused(private_cache, edited, monkeypatch):
    from rerank_lib import teacher as teacher_mod

    teacher_mod.teacher_scores("minilm-l6", RUN, CORPUS, QUERIES, depth=2)
    monkeypatch.setattr(teacher_mod, "rerank_with_encoder", lambda *a, **k: pytest.fail("recomputed"))
    teacher_mod.teacher_scores("minilm-l6", RUN, CORPUS, QUERIES, depth=2)  # same code: the cache
    edited("teacher.py")
    with pytest.raises(pytest.fail.Exception, match="recomputed"):
        teacher_mod.teacher_scores("minilm-l6", RUN, CORPUS, QUERIES, depth=2)


# ---- corpus embeddings -------------------------------------------------------------------------------------------

def _corpus_path(encoder):
    return encoder.cache_path(list(CORPUS), [d.text_for_model for d in CORPUS.values()])


def test_same_size_damage_to_cached_embeddings_is_recomputed(encoder):
    """The finding: same-size damage to cached embeddings was used (dense nDCG@10 0.701 -> 0.188, exit 0)."""
    first = encoder.encode_corpus(CORPUS, show_progress=False)
    path = _corpus_path(encoder)
    flip_bytes_at_the_end(path)
    assert np.load(path).shape == first.shape and not np.array_equal(np.load(path), first)  # loads fine: damage
    with pytest.warns(CacheWarning, match=path.name):
        again = encoder.encode_corpus(CORPUS, show_progress=False)
    np.testing.assert_array_equal(again, first)


def test_truncated_embeddings_are_recomputed_not_a_traceback(encoder):
    """The finding: truncated embeddings gave a traceback naming no file."""
    first = encoder.encode_corpus(CORPUS, show_progress=False)
    path = _corpus_path(encoder)
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.warns(CacheWarning, match="truncated"):
        again = encoder.encode_corpus(CORPUS, show_progress=False)
    np.testing.assert_array_equal(again, first)


def test_the_embedding_key_names_the_encoder_code(encoder, edited):
    before = _corpus_path(encoder)
    edited("retrievers/bi_encoder.py")
    assert _corpus_path(encoder) != before


# ---- LLM features, reader scores, synthetic queries --------------------------------------------------------------

def test_a_damaged_llm_feature_file_is_recomputed():
    from rerank_lib.rerankers.llm_reranker.features import FeatureStore

    store = FeatureStore("k")
    store.put({"a": np.ones(4, dtype=np.float32), "b": np.zeros(4, dtype=np.float32)})
    np.testing.assert_array_equal(FeatureStore("k").get(["a"])["a"], np.ones(4))
    flip_bytes_at_the_end(store.path, 8)
    with pytest.warns(CacheWarning, match="k.npz"):
        assert FeatureStore("k").get(["a", "b"]) == {}  # nothing found: the caller computes the features again


def test_a_damaged_reader_score_file_is_recomputed_and_the_key_names_the_code(edited):
    from rerank_lib.retrievers.training import ScoreCache

    rpg = ("rerank_lib.retrievers.rpg",)
    store = ScoreCache("rpg", {"model": "m"}, code=rpg)
    store.put("k", [0.5, 0.25])
    store.save()
    assert ScoreCache("rpg", {"model": "m"}, code=rpg).get("k") == [0.5, 0.25]
    store.path.write_text(store.path.read_text()[:-5])  # cut: before, a JSON traceback naming no file
    with pytest.warns(CacheWarning, match=store.path.name):
        assert ScoreCache("rpg", {"model": "m"}, code=rpg).get("k") is None
    edited("retrievers/rpg.py")
    assert ScoreCache("rpg", {"model": "m"}, code=rpg).path != store.path


class FakeGenerator:
    """A query generator without a model: the query is the document's first two words."""

    calls = 0

    def settings(self):
        return {"model": "fake"}

    def generate_one(self, document):
        FakeGenerator.calls += 1
        return " ".join(document.split()[:2]), -1.0, 2


def test_a_cut_synthetic_query_file_is_generated_again(private_cache, edited):
    from rerank_lib.synthetic_queries import generate_queries

    ids = ["cat", "dog", "qm"]
    first = generate_queries(CORPUS, ids, generator=FakeGenerator())
    assert FakeGenerator.calls == 3 and [q.query for q in first] == ["Cats The", "Dogs Dogs", "Physics Quantum"]
    generate_queries(CORPUS, ids, generator=FakeGenerator())
    assert FakeGenerator.calls == 3  # cached
    (path,) = (private_cache / "synthetic_queries").glob("*.jsonl")
    cut_at_a_line_break(path, keep_lines=2)
    with pytest.warns(CacheWarning, match=path.name):
        assert generate_queries(CORPUS, ids, generator=FakeGenerator()) == first
    assert FakeGenerator.calls == 6
    edited("synthetic_queries.py")
    generate_queries(CORPUS, ids, generator=FakeGenerator())
    assert FakeGenerator.calls == 9  # another code version: generated again


# ---- de-quantised models -----------------------------------------------------------------------------------------

def test_a_truncated_dequantised_weights_file_is_dequantised_again(private_cache, monkeypatch, edited):
    """The finding: truncated weights gave a traceback naming no file. The de-quantised folder lists its files'
    checksums; a cut weights file is found, the folder removed and the GGUF de-quantised again."""
    transformers = pytest.importorskip("transformers")
    from rerank_lib import models

    gguf = private_cache / "gguf"
    gguf.mkdir()
    (gguf / "tiny.Q8_0.gguf").write_bytes(b"not read: from_pretrained is replaced below")
    loads = []

    def tiny_model(*args, **kwargs):
        loads.append(args)
        config = transformers.LlamaConfig(hidden_size=8, intermediate_size=16, num_hidden_layers=1,
                                          num_attention_heads=2, num_key_value_heads=2, vocab_size=32)
        return transformers.LlamaForCausalLM(config)

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", tiny_model)
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained",
                        lambda *a, **k: transformers.BertTokenizerFast.from_pretrained(
                            models.resolve("minilm-l6").source))
    folder = Path(models.dequantised_copy(gguf))
    assert folder.parent == private_cache / "models" and len(loads) == 1
    assert folder_problem(folder) is None and (folder / "checksums.sha256").is_file()
    assert models.dequantised_copy(gguf) == str(folder) and len(loads) == 1  # trusted: reused
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.warns(CacheWarning, match=r"model\.safetensors has 100 bytes"):
        assert models.dequantised_copy(gguf) == str(folder)
    assert len(loads) == 2 and folder_problem(folder) is None
    edited("models/loading.py")
    assert models.dequantised_folder(gguf) != folder  # another code version, another folder


# ---- unpinned downloads ------------------------------------------------------------------------------------------

@pytest.fixture()
def server(tmp_path):
    """A local HTTP server on 127.0.0.1 serving `pages[path] = bytes` (status 200 for every page, as a proxy's error
    page is), and counting requests."""
    import http.server
    import threading

    pages: dict[str, bytes] = {}
    requests: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            requests.append(self.path)
            body = pages.get(self.path)
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, *a):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield pages, requests, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


RECORDS = b'{"id": "1", "conversations": []}\n{"id": "2", "conversations": []}\n'
ERROR_PAGE = b"<!DOCTYPE html>\n<html><head><title>503 Service Unavailable</title></head><body>busy</body></html>\n"


def gz(data: bytes) -> bytes:
    import gzip

    return gzip.compress(data, mtime=0)


def test_an_unpinned_download_that_is_an_error_page_or_a_cut_gzip_is_not_saved(server, tmp_path):
    """The finding: an unpinned download (RankZephyr's data) that was an error page or a cut gzip was saved and
    reused forever. Now it is checked by its format and nothing is kept."""
    from rerank_lib.data.download import DownloadError, RemoteFile, download_files

    pages, requests, url = server
    spec = RemoteFile("rank_llm/data.jsonl.gz", f"{url}/data.jsonl.gz", sha256=None)
    dest = tmp_path / "data"
    pages["/data.jsonl.gz"] = ERROR_PAGE
    with pytest.raises(DownloadError, match=r"data\.jsonl\.gz: an HTML page .*; not saved"):
        download_files([spec], dest)
    pages["/data.jsonl.gz"] = gz(RECORDS)[:-12]  # cut before the gzip trailer
    with pytest.raises(DownloadError, match="a cut gzip"):
        download_files([spec], dest)
    pages["/data.jsonl.gz"] = gz(b'{"id": "1"}\nnot json\n')
    with pytest.raises(DownloadError, match="line 2 is not JSON"):
        download_files([spec], dest)
    assert not [p for p in dest.rglob("*") if p.is_file()]
    pages["/data.jsonl.gz"] = gz(RECORDS)
    (path,) = download_files([spec], dest)
    assert path.read_bytes() == gz(RECORDS) and checksum_problem(path) is None
    before = len(requests)
    assert download_files([spec], dest) == [path] and len(requests) == before  # verified in the cache: no fetch


def test_a_bad_cached_unpinned_download_is_fetched_again(server, tmp_path):
    from rerank_lib.data.download import RemoteFile, download_files

    pages, requests, url = server
    pages["/data.jsonl.gz"] = gz(RECORDS)
    spec = RemoteFile("rank_llm/data.jsonl.gz", f"{url}/data.jsonl.gz", sha256=None)
    dest = tmp_path / "data"
    target = dest / spec.path
    target.parent.mkdir(parents=True)
    target.write_bytes(ERROR_PAGE)  # saved by an earlier version, without a sidecar
    with pytest.warns(CacheWarning, match="an HTML page"):
        (path,) = download_files([spec], dest)
    assert path.read_bytes() == gz(RECORDS) and len(requests) == 1
    path.write_bytes(gz(RECORDS)[:-1] + b"\xff")  # same-size damage: the sidecar no longer matches
    with pytest.warns(CacheWarning, match="sha256 differs"):
        download_files([spec], dest)
    assert path.read_bytes() == gz(RECORDS) and len(requests) == 2
    checksum_path(path).unlink()  # a valid file from before sidecars: checked by format, adopted, not fetched
    download_files([spec], dest)
    assert len(requests) == 2 and checksum_problem(path) is None
