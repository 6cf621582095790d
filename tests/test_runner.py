"""The papermill runner: order, parameters, stop at the first failure, earlier results intact."""
import json

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from rerank_lib.runner import list_notebooks, main, run_all


def _book(path, *sources):
    nb = new_notebook()
    params = new_code_cell('profile = "default"\nresults_dir = None')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params] + [new_code_cell(s) for s in sources]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


@pytest.fixture()
def books(tmp_path):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    _book(folder / "00_first.ipynb", "from pathlib import Path\nPath(results_dir, 'first.txt').write_text(profile)")
    _book(folder / "01_broken.ipynb", "x = 1", "raise ValueError('bad parameter on purpose')")
    _book(folder / "02_never.ipynb", "from pathlib import Path\nPath(results_dir, 'never.txt').write_text('ran')")
    return folder


def test_stops_at_first_failure_and_keeps_earlier_results(books, tmp_path, capsys):
    out = tmp_path / "results"
    runs = run_all("smoke", results_dir=out, folder=books)
    assert [(r.name, r.ok) for r in runs] == [("00_first.ipynb", True), ("01_broken.ipynb", False)]
    assert (out / "first.txt").read_text() == "smoke"  # the profile parameter was injected
    assert not (out / "never.txt").exists()
    assert "ValueError: bad parameter on purpose" in runs[1].error and "cell In[4]" in runs[1].error  # after the parameters cell, papermill's injected one and 'x = 1'
    executed = out / "notebooks" / "smoke"
    assert (executed / "00_first.ipynb").exists() and (executed / "01_broken.failed.ipynb").exists()
    assert not (executed / "01_broken.ipynb").exists() and not list(executed.glob(".*running*"))
    timings = json.loads((executed / "runtimes.json").read_text())
    assert timings["00_first.ipynb"]["ok"] and not timings["01_broken.ipynb"]["ok"]
    assert timings["00_first.ipynb"]["finished"][:2] == "20"  # an ISO date, what README's run date is read from
    assert "bad parameter on purpose" in capsys.readouterr().err
    # papermill's metadata names the notebook and the copy the run left, as `paths.shown` spells them
    from rerank_lib.paths import shown

    for name, source in (("00_first.ipynb", "00_first.ipynb"), ("01_broken.failed.ipynb", "01_broken.ipynb")):
        meta = nbformat.read(executed / name, as_version=4).metadata.papermill
        assert (meta.input_path, meta.output_path) == (shown(books / source), shown(executed / name))
        assert str(tmp_path) not in str(meta) and meta.parameters["results_dir"].startswith("<tmp>/")


def test_subset_and_listing(books):
    assert [b.name for b in list_notebooks(["02"], books)] == ["02_never.ipynb"]
    assert [b.name for b in list_notebooks(None, books)] == ["00_first.ipynb", "01_broken.ipynb", "02_never.ipynb"]
    with pytest.raises(SystemExit):
        list_notebooks(["77"], books)


def test_cli_rejects_unknown_profile():
    with pytest.raises(SystemExit):
        main(["--profile", "huge"])


def test_repository_notebooks_have_parameters_and_profile():
    books = list_notebooks()
    assert books[0].name.startswith("00_") and books[-1].name == "99_results.ipynb"
    for path in books:
        nb = nbformat.read(path, as_version=4)
        params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(params) == 1, path.name
        assert 'profile = "default"' in params[0].source, path.name
        assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), f"{path.name} has outputs committed"


def test_executed_copies_get_compact_text_progress_not_widgets(tmp_path, monkeypatch):
    """The runner's kernels see RERANK_PROGRESS=text: rerank_lib's bars are plain text in the executed copy."""
    from rerank_lib.paths import PROJECT_ROOT

    monkeypatch.delenv("RERANK_PROGRESS", raising=False)
    folder = tmp_path / "notebooks"
    folder.mkdir()
    _book(folder / "00_bars.ipynb",
          "import os, sys\nsys.path.insert(0, project_root)\nfrom rerank_lib.progress import tqdm\n"
          "bar = tqdm(range(500), desc='bars')\nfor _ in bar:\n    pass\n"
          "print(os.environ['RERANK_PROGRESS'], type(bar).__module__)")
    out = tmp_path / "results"
    runs = run_all("smoke", results_dir=out, folder=folder, extra={"project_root": str(PROJECT_ROOT)})
    assert runs[0].ok, runs[0].error
    outputs = nbformat.read(out / "notebooks" / "smoke" / "00_bars.ipynb", as_version=4).cells[-1].outputs
    assert not any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs)
    stdout = "".join(o.get("text", "") for o in outputs if o.get("name") == "stdout")
    stderr = "".join(o.get("text", "") for o in outputs if o.get("name") == "stderr")
    assert stdout.strip() == "text tqdm.std"
    assert "bars: 100%" in stderr and stderr.count("bars:") <= 3  # first and last refresh, not one per item
    assert "RERANK_PROGRESS" not in __import__("os").environ  # the runner's own process is left as it was


def test_progress_switch(monkeypatch):
    import io

    from tqdm.auto import tqdm as auto_tqdm

    from rerank_lib import progress

    monkeypatch.delenv("RERANK_PROGRESS", raising=False)
    assert progress.mode() == "auto"
    assert type(progress.tqdm(range(2), disable=True)) is auto_tqdm
    monkeypatch.setenv("RERANK_PROGRESS", "text")
    sink = io.StringIO()
    bar = progress.tqdm(total=1000, file=sink, desc="x", dynamic_ncols=True)
    assert type(bar).__module__ == "tqdm.std" and bar.mininterval == progress.TEXT_MININTERVAL == 30.0
    assert not bar.dynamic_ncols
    for _ in range(1000):
        bar.update(1)
    bar.close()
    assert sink.getvalue().count("x:") == 2  # the opening line and the closing one, nothing in between
    monkeypatch.setenv("RERANK_PROGRESS", "widgets")
    with pytest.raises(ValueError, match="RERANK_PROGRESS"):
        progress.tqdm(range(2))


def test_only_without_a_value_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--only"])
    assert exit_.value.code == 2 and "--only: expected at least one argument" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main(["--only", "--profile", "smoke"])
    assert exit_.value.code == 2


def test_parameters_are_typed_like_papermill_does():
    from rerank_lib.runner import parameter_value

    assert parameter_value("7") == 7 and parameter_value("1e-5") == 1e-5 and parameter_value("0.5") == 0.5
    assert parameter_value("True") is True and parameter_value("false") is False and parameter_value("None") is None
    assert parameter_value('{"a": 1}') == {"a": 1} and parameter_value("[x") == "[x"
    assert parameter_value("bm25") == "bm25"


def test_extra_parameters_reach_the_notebook(books, tmp_path):
    folder = books.parent / "extra"
    folder.mkdir()
    _book(folder / "00_params.ipynb", "from pathlib import Path\nPath(results_dir, 'seed.txt').write_text(repr(seed))")
    nb = nbformat.read(folder / "00_params.ipynb", as_version=4)
    nb.cells[0].source += "\nseed = 0"
    nbformat.write(nb, folder / "00_params.ipynb")
    out = tmp_path / "results"
    runs = run_all("smoke", results_dir=out, folder=folder, extra={"seed": 7})
    assert runs[0].ok, runs[0].error
    assert (out / "seed.txt").read_text() == "7"
