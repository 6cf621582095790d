"""Every notebook, executed in order with papermill in the smoke profile, into a temporary results folder."""
import json
import os

import nbformat
import pytest

from rerank_lib.results import load_records
from rerank_lib.runner import list_notebooks, run_all

pytestmark = [pytest.mark.notebook, pytest.mark.slow]


@pytest.fixture(scope="module")
def smoke_run(module_scratch, shared_data):
    out = module_scratch("smoke_results")
    # Every kernel records which settings its code read (rerank_lib.settings), for the settings-read test.
    os.environ["RERANK_SETTINGS_READS"] = str(out / "settings_reads.jsonl")
    try:
        return out, run_all("smoke", results_dir=out, data_root=str(shared_data))
    finally:
        del os.environ["RERANK_SETTINGS_READS"]


def test_every_setting_is_read_by_the_code_it_configures(smoke_run):
    """No accepted-but-ignored setting: every field of every config a notebook built was read by some code
    (record params and cache keys do not count), unless the config names the condition under which it is read."""
    out, _ = smoke_run
    built, read = {}, set()
    for line in (out / "settings_reads.jsonl").read_text().splitlines():
        entry = json.loads(line)
        built.update(entry["built"])
        read |= {tuple(pair) for pair in entry["read"]}
    assert {"TrainConfig"} < set(built), sorted(built)
    unread = {name: [f for f in info["fields"] if (name, f) not in read and f not in info["read_only_when"]]
              for name, info in built.items()}
    assert not {k: v for k, v in unread.items() if v}


def test_every_notebook_runs_in_smoke_profile(smoke_run):
    out, runs = smoke_run
    failed = [r.error for r in runs if not r.ok]
    assert not failed, failed
    assert [r.name for r in runs] == [b.name for b in list_notebooks()]
    for run in runs:
        nb = nbformat.read(run.output, as_version=4)
        errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
        assert not errors, run.name


def test_smoke_records_and_tables(smoke_run):
    out, _ = smoke_run
    records = load_records(out, profile="smoke")
    methods = {(r.pipeline, r.method, r.dataset) for r in records}
    assert ("first_stage", "bm25", "scifact") in methods and ("first_stage", "minilm-l6-dense", "scifact") in methods
    assert ("first_stage", "bm25", "trec-dl-2019") in methods
    bm25_dl19 = next(r for r in records if r.method == "bm25" and r.dataset == "trec-dl-2019")
    assert 0.0 < bm25_dl19.metrics["nDCG@10"] <= 1.0 and bm25_dl19.profile == "smoke"
    assert (out / "runs" / "smoke" / "scifact_test.bm25.trec").exists()
    assert (out / "runs" / "smoke" / "scifact_train.bm25.trec").exists()
    assert {("teacher", "minilm-l6", d) for d in ("scifact", "trec-dl-2019", "trec-dl-2020")} <= methods
    assert (out / "runs" / "smoke" / "scifact_train.teacher-minilm-l6.trec").exists()  # labels for the pipelines
    md = (out / "RESULTS.smoke.md").read_text()
    assert "scifact" in md and "trec-dl-2020" in md
    assert (out / "figures" / "summary_ndcg10_smoke.png").stat().st_size > 1000


PIPELINE_FIGURES = {  # figure stems every pipeline notebook writes (learning curves, latency), smoke profile
    "cross_encoder": ["cross_encoder_curves", "llm_reranker_curves", "hopweaver_curve"],
    "inranker": ["inranker_learning_curves", "inranker_teacher_agreement"],
    "rankllm": ["rankllm_dev_curve", "rankllm_latency", "rankllm_search_curve"],
    "retriever": ["retriever_scifact_ctl_dev"],
}


@pytest.mark.parametrize("pipeline", sorted(PIPELINE_FIGURES))
def test_pipeline_records_are_complete(smoke_run, pipeline):
    """Each pipeline notebook leaves trained rows that name their training queries, sit on real metrics, carry a
    significance test against the first stage or their start, and are never evaluated on a query they trained on."""
    from rerank_lib.evaluation import measures_for

    out, _ = smoke_run
    records = [r for r in load_records(out, profile="smoke") if r.pipeline == pipeline]
    trained = [r for r in records if r.n_training_queries]
    assert trained, f"{pipeline}: no trained rows"
    for r in records:
        headline = measures_for(r.dataset)[0]  # nDCG@10; accuracy on a test set of given candidates (HopWeaver's)
        assert r.metrics.get(headline) is not None and 0.0 <= r.metrics[headline] <= 1.0, (r.stem, r.metrics)
        assert r.profile == "smoke" and r.per_query and (out / r.per_query).exists(), r.stem
    for r in trained:
        assert r.training_queries and r.training_queries != "none (zero-shot)", r.stem
        assert r.significance, f"{r.stem}: no significance test against BM25 or its start"
        for test in r.significance.values():
            for measure, stats in test.items():
                assert stats["p_value"] is None or 0.0 <= stats["p_value"] <= 1.0, (r.stem, measure, stats)
    for stem in PIPELINE_FIGURES[pipeline]:
        figure = out / "figures" / f"{stem}_smoke.png"
        assert figure.exists() and figure.stat().st_size > 1000, figure
    table = (out / "RESULTS.smoke.md").read_text()
    assert all(r.method in table for r in trained), pipeline


def test_trained_models_are_published_in_peer_formats(smoke_run):
    """Every notebook that trains leaves its selected models under <results>/models/<profile>/, each with a model
    card, and a cross-encoder trained here loads in sentence-transformers and a retriever in SentenceTransformer."""
    from sentence_transformers import CrossEncoder, SentenceTransformer

    out, _ = smoke_run
    models = out / "models" / "smoke"
    published = sorted(p.name for p in models.iterdir())
    assert {"ce-minilm-point-ce", "hopweaver-diverse-ft"} <= set(published), published
    assert {"ctl-minilm-localrqa-faire", "ctl-minilm-scifact"} <= set(published), published
    assert any("first" in name for name in published)
    assert all((models / name / "README.md").is_file() for name in published)
    scores = CrossEncoder(str(models / "ce-minilm-point-ce"), device="cpu").predict([("a claim", "an abstract")])
    assert 0.0 < float(scores[0]) < 1.0
    ctl = next(name for name in published if name.startswith("ctl-"))
    assert SentenceTransformer(str(models / ctl), device="cpu").encode(["a question"]).shape[0] == 1


# ---------------------------------------------------------------------------------------------- paper-tiny
# Every notebook in the paper-tiny profile: the paper settings with small sizes/steps and each hub model replaced by
# its tiny stand-in of the same class (rerank_lib.models.standin), so every paper code path runs without a GPU. A notebook
# the paper path cannot run yet is a strict xfail naming what stops it: once that is fixed (the paper data lands, the
# profile is corrected) it passes, the xfail turns into a failure (XPASS, strict), and its entry below is removed.
PAPER_TINY_KNOWN_STOPS: dict[str, str] = {}


@pytest.fixture(scope="module")
def paper_tiny_results(module_scratch, shared_data):
    """A results folder, a private cache (the mirror's small files must never land in the project's cache, where a
    real paper run would find them) and a local HTTP mirror of every paper data file, through the real download code."""
    from paper_mirror import PaperMirror

    root = module_scratch("paper_tiny")
    saved = {k: os.environ.get(k) for k in ("RERANK_DOWNLOAD_MIRROR", "RERANK_DOWNLOAD_MANIFEST", "RERANK_CACHE_DIR")}
    with PaperMirror(shared_data, root / "mirror") as mirror:
        os.environ.update({**mirror.env, "RERANK_CACHE_DIR": str(root / "cache")})
        try:
            yield root / "results"
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def _paper_tiny_case(book):
    reason = PAPER_TINY_KNOWN_STOPS.get(book.stem)
    marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
    return pytest.param(book, id=book.stem, marks=marks)


@pytest.mark.parametrize("book", [_paper_tiny_case(b) for b in list_notebooks()])
def test_every_notebook_runs_in_paper_tiny(paper_tiny_results, shared_data, book):
    """In name order into one results folder (later notebooks read earlier runs); each one well under a minute on
    2 cores. Its records say 'paper-tiny' and name the stand-ins that served the paper's models."""
    from rerank_lib.runner import run_notebook

    out = paper_tiny_results
    params = {"results_dir": str(out), "data_root": str(shared_data)}
    run = run_notebook(book, "paper-tiny", out / "notebooks", params)
    assert run.ok, run.error
    records = load_records(out, profile="paper-tiny")
    assert all(r.profile == "paper-tiny" for r in records)
    if book.name >= "02":  # from the teachers on, hub models ran: their rows name the stand-ins
        assert any("standins" in r.params for r in records)
    assert not load_records(out, profile="paper")  # never filed as a paper result


def _output_texts(nb):
    """(cell index, text) of every output of an executed notebook, images left out."""
    for index, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            if "text" in output:
                yield index, output["text"]
            for kind, value in output.get("data", {}).items():
                if not kind.startswith("image/"):
                    yield index, value if isinstance(value, str) else json.dumps(value)
            if "traceback" in output:
                yield index, "\n".join(output["traceback"])


MAX_OUTPUT_CHARS = 300_000  # text of all outputs of one executed smoke notebook (figures excluded)


def test_executed_notebooks_carry_no_machine_paths_or_issue_numbers(smoke_run, shared_data):
    """Outputs show paths relative to their root (rerank_lib.paths.shown), never this machine's, and no issue numbers."""
    import re
    import tempfile
    from pathlib import Path

    from rerank_lib.paths import PROJECT_ROOT

    out, runs = smoke_run
    machine = {str(PROJECT_ROOT), str(Path.home()), tempfile.gettempdir().rstrip("/") + "/", str(out),
               str(Path(shared_data).resolve())}
    issue = re.compile(r"(?<![&\w#])#\d+\b|\bissue \d+", re.IGNORECASE)
    found = []
    for run in runs:
        nb = nbformat.read(run.output, as_version=4)
        for index, text in _output_texts(nb):
            found += [(run.name, index, prefix) for prefix in machine if prefix in text]
            found += [(run.name, index, m.group(0)) for m in issue.finditer(text)]
        metadata = str(nb.metadata)  # papermill's input/output paths included
        found += [(run.name, "metadata", prefix) for prefix in machine if prefix in metadata]
        assert nb.metadata.papermill.input_path == f"notebooks/{run.name}"
        assert nb.metadata.papermill.output_path.endswith(f"/{run.name}") and not nb.metadata.papermill.output_path.startswith("/")
    assert not found, found[:20]


def test_executed_notebooks_are_compact_and_end_with_their_reading(smoke_run):
    """Progress leaves a few lines (no carriage-return updates), outputs stay small, and every notebook's last cell
    shows the 'Reading the numbers' text generated from its records."""
    _, runs = smoke_run
    for run in runs:
        nb = nbformat.read(run.output, as_version=4)
        texts = [text for _, text in _output_texts(nb)]
        assert not any("\r" in text for text in texts), run.name
        assert sum(len(text) for text in texts) < MAX_OUTPUT_CHARS, run.name
        last = nb.cells[-1]
        shown = [o.get("data", {}).get("text/markdown", "") for o in last.get("outputs", [])]
        assert last.cell_type == "code" and any(t.startswith("### Reading the numbers") for t in shown), run.name
