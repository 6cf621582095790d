"""What executed notebooks print: relative paths, line-per-refresh progress, one line for a cached training run."""
import io
import logging
from pathlib import Path

from rerank_lib import paths
from rerank_lib.experiment.selection import cached_run_line
from rerank_lib.progress import LineStream, quiet_known_noise, tqdm
from rerank_lib.training import TrainResult


def test_paths_are_shown_relative_to_their_root(tmp_path, monkeypatch):
    assert paths.shown(paths.PROJECT_ROOT / "results" / "RESULTS.md") == "results/RESULTS.md"
    assert paths.shown("already/relative.txt") == "already/relative.txt"
    results = paths.results_dir(tmp_path / "my_results")  # a notebook's results_dir parameter
    assert paths.shown(results / "records" / "a.json") == "<results>/records/a.json"
    assert paths.shown(results) == "<results>"
    monkeypatch.setenv("RERANK_CACHE_DIR", str(tmp_path / "cache"))
    run = paths.cache_dir("inranker", "runs") / "x"
    assert paths.shown(run) == "<cache>/inranker/runs/x"
    assert paths.shown(Path.home() / "notes.txt") == "~/notes.txt"
    line = f"LOAD REPORT from: {run} and {paths.PROJECT_ROOT / 'notebooks'}"
    assert paths.shown_in(line) == "LOAD REPORT from: <cache>/inranker/runs/x and ./notebooks"


def test_paths_behind_a_symlink_are_shown_in_both_spellings(tmp_path):
    """A checkout or data folder reached through a symlink (as on CI) prints the spelled path; both forms are
    shown from their root."""
    real = tmp_path / "real_data"
    (real / "beir").mkdir(parents=True)
    link = tmp_path / "linked_data"
    link.symlink_to(real)
    root = paths.data_root(link)
    assert paths.shown(root / "beir") == "<data>/beir"
    assert paths.shown(real / "beir") == "<data>/beir"
    assert paths.shown_in(f"data_root='{link}' and {real}/beir") == "data_root='<data>' and <data>/beir"


def test_warnings_and_settings_tables_show_paths_from_their_root(tmp_path):
    import warnings

    from rerank_lib.progress import quiet_known_noise
    from rerank_lib.recipes import inranker

    quiet_known_noise()
    text = warnings.formatwarning("old API", FutureWarning, str(paths.PROJECT_ROOT / "lib" / "x.py"), 3)
    assert text.startswith("./lib/x.py:3: FutureWarning: old API")
    data = tmp_path / "data"
    data.mkdir()
    table = inranker.summary(inranker.config("smoke", data_root=str(paths.data_root(data))))
    assert table.loc["data_root", "value"] == "<data>"


def test_text_progress_has_no_carriage_returns(monkeypatch):
    monkeypatch.setenv("RERANK_PROGRESS", "text")
    out = io.StringIO()
    for _ in tqdm(range(5), desc="steps", file=LineStream(out), mininterval=0):
        pass
    text = out.getvalue()
    assert "\r" not in text and "#" not in text  # "#2" in a bar would read as an issue number
    lines = text.splitlines()
    assert lines[0].startswith("steps:   0%") and lines[-1].startswith("steps: 100%")
    assert 6 <= len(lines) <= 7  # one line per refresh (0..5), and the closing one
    assert all(line == line.rstrip() for line in lines)


def test_text_progress_shows_a_new_postfix_at_the_timed_refresh_only(monkeypatch):
    """The training loop sets its loss at every logged step: in text mode that is no line of its own."""
    monkeypatch.setenv("RERANK_PROGRESS", "text")
    out = io.StringIO()
    bar = tqdm(total=50, desc="train", file=LineStream(out), mininterval=3600)
    for step in range(50):
        bar.update(1)
        bar.set_postfix(loss=f"{1 / (step + 1):.4f}")
    bar.close()
    lines = out.getvalue().splitlines()
    assert len(lines) == 2  # the first refresh and the closing one, not a line per step
    assert lines[0].startswith("train:   0%") and lines[-1].startswith("train: 100%") and "loss=0.0200" in lines[-1]


def test_known_noise_filters(caplog):
    quiet_known_noise()
    quiet_known_noise()  # installed once, however often called
    assert len(logging.getLogger("accelerate.utils.other").filters) == 1
    with caplog.at_level(logging.WARNING):
        logging.getLogger("accelerate.utils.other").warning("[RANK 0] Removed shared tensor {'lm_head'} while saving.")
        logging.getLogger("accelerate.utils.other").warning("another warning stays")
        logging.getLogger("transformers.modeling_utils").warning(f"LOAD REPORT from: {paths.PROJECT_ROOT}/models/x")
    messages = [r.getMessage() for r in caplog.records]
    assert messages == ["another warning stays", "LOAD REPORT from: ./models/x"]


def test_cached_run_is_one_line_with_a_relative_dir():
    run = paths.PROJECT_ROOT / ".cache" / "runs" / "ce-abc"
    result = TrainResult(global_step=150, history=[], eval_history=[], final_dir=run / "final", last_checkpoint=None,
                         best_metric=0.6, best_step=100, metric_for_best="nDCG@10", cached=True)
    line = cached_run_line(result)
    assert line.startswith("training: cached run ") and line.endswith("(step 100 of 150 selected)")
    assert str(paths.PROJECT_ROOT) not in line and "\n" not in line
    result.best_step = 0
    assert cached_run_line(result).endswith("(the untrained start of 150 selected)")


def test_a_config_shows_its_data_root_relative():
    from IPython.lib.pretty import pretty

    from rerank_lib.recipes import retriever_training

    root = paths.data_root()
    if root is None:
        import pytest

        pytest.skip("no data root")
    cfg = retriever_training.scifact_config("smoke", data_root=str(root))
    assert str(root) in repr(cfg)  # the value itself is untouched
    assert "data_root='<data>'" in pretty(cfg) and str(root.resolve()) not in pretty(cfg)


def test_a_load_report_becomes_one_line():
    from rerank_lib.progress import one_line_load_report

    report = ("\x1b[1mBertModel LOAD REPORT\x1b[0m from: model\nKey                 | Status     |  | \n"
              "--------------------+------------+--+-\npooler.dense.bias   | UNEXPECTED |  | \n"
              "pooler.dense.weight | UNEXPECTED |  | \nhead.weight | MISSING |  | \n\nNotes:\n"
              "- UNEXPECTED:\tcan be ignored when loading from different task/architecture.\n")
    assert one_line_load_report(report) == ("\x1b[1mBertModel LOAD REPORT\x1b[0m from: model (UNEXPECTED: "
                                            "pooler.dense.bias, pooler.dense.weight; MISSING: head.weight)")
    assert one_line_load_report("another message\nwith lines") == "another message\nwith lines"


def test_notebooks_and_readme_name_no_machine_path_or_issue_number():
    import re

    import nbformat

    issue = re.compile(r"(?<![&\w#])#\d+\b|\bissue \d+", re.IGNORECASE)
    machine = (str(paths.PROJECT_ROOT), str(Path.home()) + "/", "/tmp/")
    texts = {"README.md": (paths.PROJECT_ROOT / "README.md").read_text(encoding="utf-8")}
    for book in sorted((paths.PROJECT_ROOT / "notebooks").glob("*.ipynb")):
        texts[book.name] = "\n".join(c.source for c in nbformat.read(book, as_version=4).cells)
    found = [(name, m.group(0)) for name, text in texts.items() for m in issue.finditer(text)]
    found += [(name, prefix) for name, text in texts.items() for prefix in machine if prefix in text]
    assert not found, found
