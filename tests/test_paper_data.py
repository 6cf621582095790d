"""The paper data path: RankZephyr's training-data reader, and every remote file a paper profile reads fetched by
the real download code from a local mirror (tests/paper_mirror.py): success, sha256 mismatch, cut connection, 404."""
import gzip
import json

import pytest

from rerank_lib.data import registry
from rerank_lib.data.download import DownloadError, RemoteFile, download_files, expected_hashes
from rerank_lib.data.errors import DataFormatError
from rerank_lib.data.inranker import published_file, read_custom_jsonl, read_msmarco_soft_labels, remote_file
from rerank_lib.data.rank_zephyr import RANK_ZEPHYR_FILE, rank_zephyr_file, read_rank_zephyr

from paper_mirror import PaperMirror, build_paper_files, paper_mirror, paper_remote_files  # noqa: F401 (fixture)

SYSTEM = "You are RankLLM, an intelligent assistant that can rank passages based on their relevancy to the query"


def user_prompt(query, passages, alpha=False, gap="\n"):
    kind = "an alphabetical" if alpha else "a numerical"
    ids = [chr(65 + i) if alpha else str(i + 1) for i in range(len(passages))]
    body = "".join(f"[{i}] {p}\n" for i, p in zip(ids, passages))
    return (f"I will provide you with {len(passages)} passages, each indicated by {kind} identifier []. Rank the "
            f"passages based on their relevance to the search query: {query}.\n{gap[1:]}{body}"
            f"Search Query: {query}.\nRank the {len(passages)} passages above based on their relevance to the search "
            f"query. All the passages should be included and listed using identifiers, in descending order of "
            f"relevance. The output format should be [] > [], e.g., [2] > [1], Answer concisely and directly and "
            f"only respond with the ranking results, do not say any word or explain.")


def record(user, answer, rid="r1"):
    return {"id": rid, "conversations": [{"from": "system", "value": SYSTEM}, {"from": "human", "value": user},
                                         {"from": "gpt", "value": answer}]}


def write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


# ---------------------------------------------------------------- the reader
def test_rank_zephyr_reader_turns_records_into_examples(tmp_path):
    rows = [record(user_prompt("what is a flea", ["fleas jump", "dogs bark", "cats sleep"], gap="\n\n"),
                   "[3] > [1] > [2]", "q1-0"),
            record(user_prompt("tyler grandsons", ["two living grandsons", "the 1841 election"], alpha=True),
                   "[B] > [A]", "q2-0")]
    numeric, alpha = read_rank_zephyr(write(tmp_path / "rz.jsonl", rows))
    assert (numeric.example_id, numeric.query, numeric.passages) == ("q1-0", "what is a flea",
                                                                     ("fleas jump", "dogs bark", "cats sleep"))
    assert numeric.order == (2, 0, 1) and numeric.ranks == [1, 2, 0] and not numeric.alpha
    assert alpha.order == (1, 0) and alpha.passages == ("two living grandsons", "the 1841 election") and alpha.alpha
    gz = tmp_path / "rz.jsonl.gz"
    gz.write_bytes(gzip.compress((json.dumps(rows[0]) + "\n").encode()))
    assert read_rank_zephyr(gz) == [numeric]
    (tmp_path / "rz.json").write_text(json.dumps(rows))  # rank_llm's load_data reads one JSON list
    assert read_rank_zephyr(tmp_path / "rz.json", limit=1) == [numeric]


@pytest.mark.parametrize("user, answer, field, problem", [
    (user_prompt("q", ["a", "b"]), "[2] > [2]", "conversations[2].value", "appears twice"),
    (user_prompt("q", ["a", "b"]), "[2]", "conversations[2].value", "leaves out 1"),
    (user_prompt("q", ["a", "b"]), "[B] > [A]", "conversations[2].value", "not one of the prompt's identifiers"),
    (user_prompt("q", ["a", "b"]), "[2] > [1] > [3]", "conversations[2].value", "not one of"),
    (user_prompt("q", ["a", "b"]).replace("[2] b\n", ""), "[1]", "conversations[1].value", "announces 2 passages, found 1"),
    (user_prompt("q", ["a", "b"]).replace("Search Query: q.", "Search Query: other."), "[1] > [2]",
     "conversations[1].value", "disagree"),
    ("Rank these: [1] a [2] b", "[1] > [2]", "conversations[1].value", "not RankZephyr's prefix"),
])
def test_rank_zephyr_reader_names_file_line_and_field(tmp_path, user, answer, field, problem):
    path = write(tmp_path / "rz.jsonl", [record(user_prompt("q", ["a", "b"]), "[1] > [2]"), record(user, answer)])
    with pytest.raises(DataFormatError, match=problem) as err:
        read_rank_zephyr(path)
    assert (err.value.path, err.value.line, err.value.field) == (str(path), 2, field)


def test_rank_zephyr_reader_checks_the_turns(tmp_path):
    bad_role = record(user_prompt("q", ["a"]), "[1]")
    bad_role["conversations"][2]["from"] = "human"
    with pytest.raises(DataFormatError, match=r"line 1, field 'conversations\[2\].from': expected 'gpt'"):
        read_rank_zephyr(write(tmp_path / "a.jsonl", [bad_role]))
    with pytest.raises(DataFormatError, match=r"field 'conversations': missing"):
        read_rank_zephyr(write(tmp_path / "b.jsonl", [{"id": 1, "conversations": []}]))


# ---------------------------------------------------------------- through the local mirror
@pytest.fixture(scope="module")
def paper_files(shared_data):
    return build_paper_files(shared_data)


@pytest.fixture()
def mirror(paper_files, shared_data, tmp_path, monkeypatch):
    with PaperMirror(shared_data, tmp_path / "mirror", paper_files) as served:
        for key, value in served.env.items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("RERANK_CACHE_DIR", str(tmp_path / "cache"))
        monkeypatch.setattr(registry, "data_root", lambda root=None: None)
        yield served


def test_mirror_serves_every_paper_file_through_the_download_code(mirror, tmp_path):
    # every file a paper profile reads: the registry's datasets, InRanker's soft labels, RankZephyr's data
    assert {f.url for f in paper_remote_files()} == set(mirror.files)
    scifact, dl19, dl20 = (registry.load_dataset(n, s) for n, s in
                           (("scifact", "test"), ("trec-dl-2019", "test"), ("trec-dl-2020", "test")))
    assert len(scifact.queries) == 10 and len(scifact.corpus) >= 30
    assert len(dl19.queries) == 5 and all(len(docs) == 20 for docs in dl19.runs["bm25"].values())
    assert len(dl20.runs["bm25"]) == 5
    assert len(registry.load_dataset("scifact", "train").queries) == 10
    cache = tmp_path / "cache" / "data"
    assert (cache / "beir/scifact/corpus.jsonl").exists() and (cache / "msmarco-passage/trec-dl-2020/qrels.txt").exists()
    # InRanker: the plain hub URL, hash from the manifest (the published md5 belongs to the full file)
    stage1 = read_msmarco_soft_labels(published_file("msmarco"), dl19.queries, dl19.corpus)
    assert len(stage1) == 40 and stage1[0].qid in dl19.queries
    stage2 = read_custom_jsonl(published_file("beir"))
    assert len(stage2) == 3 * 10  # one synthetic query per served document (10), with it and two others
    claims = {" ".join(q.lower().split()) for q in scifact.queries.values()}
    assert not {" ".join(row.query.lower().split()) for row in stage2} & claims  # synthetic, never a test claim
    # RankZephyr: 2 train queries x (the full window + 11 renumbered subsets), numeric identifiers
    examples = read_rank_zephyr(rank_zephyr_file(cache))
    assert len(examples) == 24 and len(examples[0].passages) == 20 and not examples[0].alpha
    assert sorted(examples[0].order) == list(range(20))
    assert examples[0].query == "+which president has living grandsons"
    served = {r.split("/", 2)[1] for r in mirror.requests}
    assert served == {"public.ukp.informatik.tu-darmstadt.de", "raw.githubusercontent.com", "huggingface.co"}
    # a second call finds the verified files in the cache and fetches nothing
    before = len(mirror.requests)
    registry.load_dataset("trec-dl-2019", "test")
    published_file("beir")
    assert len(mirror.requests) == before


def test_manifest_replaces_published_hashes_and_unpinned_files_need_it_or_md5(mirror, tmp_path, monkeypatch):
    table = json.loads(mirror.manifest_path.read_text())
    assert expected_hashes(RANK_ZEPHYR_FILE, table) == (table[RANK_ZEPHYR_FILE.url], None)
    assert expected_hashes(remote_file("beir"), {}) == (None, "89d914af6d231a32458fcf84a8de61a6")
    monkeypatch.delenv("RERANK_DOWNLOAD_MANIFEST")
    # without the manifest: the published md5 refuses the mirror's small InRanker file
    with pytest.raises(DownloadError, match=r"inpars_beir_dataset.jsonl: md5 \w+ != expected 89d914af"):
        published_file("beir", tmp_path / "a")
    assert not (tmp_path / "a" / "inranker").exists()
    # RankZephyr's file has no published hash: it lands unchecked, the reader verifies its format
    assert len(read_rank_zephyr(rank_zephyr_file(tmp_path / "b"))) == 24


def test_sha256_mismatch_names_the_file_and_saves_nothing(mirror, tmp_path):
    table = json.loads(mirror.manifest_path.read_text())
    url = registry.DATASETS["trec-dl-2019"].remote[1].url
    table[url] = "0" * 64
    mirror.manifest_path.write_text(json.dumps(table))
    dest = tmp_path / "dest"
    with pytest.raises(DownloadError, match=rf"{url}: sha256 [0-9a-f]{{64}} != expected 0{{64}}; not saved"):
        download_files(list(registry.DATASETS["trec-dl-2019"].remote), dest)
    assert not (dest / "msmarco-passage/trec-dl-2019/qrels.txt").exists()
    assert [p.name for p in dest.rglob("*") if p.is_file()] == ["topics.tsv"]  # the file before it, verified


def test_cut_connection_is_an_error_and_nothing_is_half_written(mirror, tmp_path):
    mirror.cut.add(RANK_ZEPHYR_FILE.url)
    size = len(mirror.files[RANK_ZEPHYR_FILE.url])
    with pytest.raises(DownloadError, match=rf"ended after {size // 2} of {size} bytes; not saved"):
        rank_zephyr_file(tmp_path / "dest")
    assert [p for p in (tmp_path / "dest").rglob("*") if p.is_file()] == []


def test_404_is_an_error_naming_the_url(mirror, tmp_path):
    url = "https://huggingface.co/datasets/castorini/rank_zephyr_training_data/resolve/main/missing.jsonl.gz"
    with pytest.raises(DownloadError, match=rf"could not download {url}: HTTP Error 404"):
        download_files([RemoteFile("rank_llm/missing.jsonl.gz", url, None)], tmp_path / "dest")
    assert not (tmp_path / "dest" / "rank_llm").exists()


def test_rankllm_paper_profile_trains_on_rank_zephyr_data(mirror):
    from rerank_lib.recipes.rankllm import config
    from rerank_lib.recipes.rankllm.training import rank_zephyr_conversations

    assert config("paper").train_data == "rank_zephyr" and config("default").train_data == "offline"
    cfg = config("default", train_data="rank_zephyr", rank_zephyr_examples=3, train_max_words=5)
    rows, used = rank_zephyr_conversations(cfg, alpha=True)
    assert len(rows) == 3 and rows[0]["num_passages"] == 20 and rows[0]["alpha"]
    user, answer = rows[0]["conversations"][1]["value"], rows[0]["conversations"][2]["value"]
    assert "alphabetical identifier" in user and "\n[T] " in user and answer.startswith("[")
    assert used.texts == {"+which president has living grandsons"}
    with pytest.raises(ValueError, match="train_data"):
        config("default", train_data="rankzephyr")
    with pytest.raises(ValueError, match="read only with train_data='rank_zephyr'"):
        config("default", rank_zephyr_examples=3)


def test_paper_mirror_fixture_gives_the_run_its_environment(paper_mirror):
    import urllib.request

    env = paper_mirror.env
    assert set(env) == {"RERANK_DOWNLOAD_MIRROR", "RERANK_DOWNLOAD_MANIFEST"}
    url = env["RERANK_DOWNLOAD_MIRROR"] + "/huggingface.co/datasets/unicamp-dl/InRanker-msmarco/resolve/main/" \
        "InRanker_msmarco.tsv"
    with urllib.request.urlopen(url) as response:
        first = response.read().decode().splitlines()[0].split("\t")
    assert len(first) == 4 and float(first[0]) == -float(first[1])


def test_mmarco_texts_come_through_the_download_code_keeping_only_the_soft_labels_ids(paper_mirror, tmp_path,
                                                                                      monkeypatch):
    from rerank_lib.data.inranker import mmarco_texts, published_file, read_msmarco_soft_labels, soft_label_ids

    for key, value in paper_mirror.env.items():
        monkeypatch.setenv(key, value)
    labels = published_file("msmarco", dest_root=tmp_path)
    qids, docids = soft_label_ids(labels, max_examples=3)
    assert len(qids) >= 1 and len(docids) == 3
    queries, corpus = mmarco_texts("english", qids=qids, docids=docids, dest_root=tmp_path)
    assert set(queries) == qids and set(corpus) == docids  # the rest of the collection is not kept
    examples = read_msmarco_soft_labels(labels, queries, corpus, max_examples=3)
    assert [ex.docid for ex in examples] == [line.split("\t")[3] for line in labels.read_text().splitlines()[:3]]
    assert all(ex.text and ex.query for ex in examples)
    assert (tmp_path / "mmarco" / "english_collection.tsv").exists()
