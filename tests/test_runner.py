"""The papermill runner: order, parameters, stop at the first failure, earlier results intact."""
import json
import os
import re

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from rerank_lib.runner import list_notebooks, main, run_all


def _book(path, *sources, parameters=""):
    nb = new_notebook()
    params = new_code_cell('profile = "default"\nresults_dir = None' + parameters)
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
    # the third cell of the notebook as written; In[4] after the parameters cell, papermill's injected one and 'x = 1'
    assert runs[1].error == ("01_broken.ipynb: cell 3 (In[4]) `raise ValueError('bad parameter on purpose')`: "
                             "ValueError: bad parameter on purpose")
    executed = out / "notebooks" / "smoke"
    assert (executed / "00_first.ipynb").exists() and (executed / "01_broken.failed.ipynb").exists()
    assert not (executed / "01_broken.ipynb").exists() and not list(executed.glob(".*running*"))
    timings = json.loads((executed / "runtimes.json").read_text())
    assert timings["00_first.ipynb"]["ok"] and not timings["01_broken.ipynb"]["ok"]
    assert timings["00_first.ipynb"]["finished"][:2] == "20"  # an ISO date, what README's run date is read from
    assert "[run_all] FAILED 01_broken.ipynb: cell 3 (In[4])" in capsys.readouterr().err
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
          "print(os.environ['RERANK_PROGRESS'], type(bar).__module__)", parameters="\nproject_root = None")
    out = tmp_path / "results"
    runs = run_all("smoke", results_dir=out, folder=folder, extra={"project_root": str(PROJECT_ROOT)})
    assert runs[0].ok, runs[0].error
    outputs = nbformat.read(out / "notebooks" / "smoke" / "00_bars.ipynb", as_version=4).cells[-1].outputs
    assert not any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs)
    stdout = "".join(o.get("text", "") for o in outputs if o.get("name") == "stdout")
    stderr = "".join(o.get("text", "") for o in outputs if o.get("name") == "stderr")
    assert stdout.strip() == "text rerank_lib.progress"
    assert "bars: 100%" in stderr and stderr.count("bars:") <= 3  # first and last refresh, not one per item
    assert "RERANK_PROGRESS" not in os.environ  # the runner's own process is left as it was


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
    assert type(bar) is progress.TextBar and bar.mininterval == progress.TEXT_MININTERVAL == 30.0
    assert bar.maxinterval == 30.0  # tqdm's monitor redraws an idle bar no more often than that either
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


# ------------------------------------------------------------------------------ every failure reported alike


def test_a_kernel_that_dies_is_a_failure_like_any_other(tmp_path, capsys):
    """A cell that kills its own kernel: FAILED with that cell and the error, the cells run so far kept in
    .failed.ipynb, the notebooks before it intact, exit status 1 (it used to end the runner with a raw
    DeadKernelError, no FAILED line and no .failed.ipynb)."""
    folder = tmp_path / "notebooks"
    folder.mkdir()
    _book(folder / "00_first.ipynb", "from pathlib import Path\nPath(results_dir, 'first.txt').write_text(profile)")
    _book(folder / "01_dies.ipynb", "before = 'ran'\nprint(before)", "import os\nos.kill(os.getpid(), 9)",
          "print('never')")
    _book(folder / "02_never.ipynb", "from pathlib import Path\nPath(results_dir, 'never.txt').write_text('ran')")
    out = tmp_path / "results"
    runs = run_all("smoke", results_dir=out, folder=folder)
    assert [(r.name, r.ok) for r in runs] == [("00_first.ipynb", True), ("01_dies.ipynb", False)]
    # In[4] too when the kernel lived long enough to count the cell
    assert re.fullmatch(r"01_dies.ipynb: cell 3( \(In\[4\]\))? `import os`: DeadKernelError: Kernel died",
                        runs[1].error)
    executed = out / "notebooks" / "smoke"
    assert runs[1].output == executed / "01_dies.failed.ipynb"
    failed = nbformat.read(executed / "01_dies.failed.ipynb", as_version=4)
    assert "ran" in "".join(o.get("text", "") for o in failed.cells[2].outputs)  # the cell before it ran and is kept
    assert not failed.cells[-1].get("outputs")
    assert (executed / "00_first.ipynb").exists() and (out / "first.txt").read_text() == "smoke"
    assert not (out / "never.txt").exists() and not list(executed.glob(".*running*"))
    assert not json.loads((executed / "runtimes.json").read_text())["01_dies.ipynb"]["ok"]
    err = capsys.readouterr().err
    assert f"[run_all] FAILED {runs[1].error}" in err


def test_the_command_exits_1_on_a_dead_kernel(tmp_path, monkeypatch, capsys):
    from rerank_lib import runner

    folder = tmp_path / "notebooks"
    folder.mkdir()
    _book(folder / "00_dies.ipynb", "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)")
    monkeypatch.setattr(runner, "list_notebooks", lambda only=None, _=None: sorted(folder.glob("*.ipynb")))
    assert main(["--profile", "smoke", "--results-dir", str(tmp_path / "results")]) == 1
    assert "FAILED 00_dies.ipynb: cell 2" in capsys.readouterr().err


# ------------------------------------------------------------------------------ -p checked before anything runs


def test_an_unknown_or_mistyped_parameter_is_an_error_before_anything_runs(tmp_path):
    """`-p learning_rate 0.1` or `-p sed 7` used to be a papermill warning and a run with the profile's values."""
    from rerank_lib.runner import ParameterError

    folder = tmp_path / "notebooks"
    folder.mkdir()
    _book(folder / "00_first.ipynb", "from pathlib import Path\nPath(results_dir, 'first.txt').write_text(profile)",
          parameters="\nseed = 13\nrate = 0.5\nflag = False\nnames = None")
    out = tmp_path / "results"
    for extra, message in [
        ({"learning_rate": 0.1},
         "-p learning_rate: not a parameter of 00_first.ipynb; accepted: flag, names, rate, seed"),
        ({"sed": 7},
         "-p sed: not a parameter of 00_first.ipynb; accepted: flag, names, rate, seed; did you mean 'seed'?"),
        ({"seed": "x"}, "-p seed: 00_first.ipynb expects an integer (default 13), got 'x'"),
        ({"seed": 1.5}, "-p seed: 00_first.ipynb expects an integer (default 13), got 1.5"),
        ({"flag": 1}, "-p flag: 00_first.ipynb expects true or false (default False), got 1"),
        ({"rate": "fast"}, "-p rate: 00_first.ipynb expects a number (default 0.5), got 'fast'"),
    ]:
        with pytest.raises(ParameterError) as error:
            run_all("smoke", results_dir=out, folder=folder, extra=extra)
        assert str(error.value) == message
        assert not out.exists()  # refused before the first notebook
    runs = run_all("smoke", results_dir=out, folder=folder, extra={"rate": 1, "names": ["a"], "seed": 7})
    assert runs[0].ok, runs[0].error  # an int is a number; None as default says nothing about the type
    with pytest.raises(SystemExit) as error:
        main(["--profile", "smoke", "--only", "00", "-p", "learning_rate", "0.1"])
    assert "-p learning_rate: not a parameter of 00_data.ipynb" in str(error.value.code)


def test_each_notebook_gets_the_parameters_its_cell_declares(tmp_path):
    """A key one notebook of the run takes is handed to that one; it is an error only when none takes it."""
    folder = tmp_path / "notebooks"
    folder.mkdir()
    _book(folder / "00_seeded.ipynb", "from pathlib import Path\nPath(results_dir, 'seed.txt').write_text(repr(seed))",
          parameters="\nseed = 0")
    _book(folder / "01_plain.ipynb", "from pathlib import Path\nPath(results_dir, 'plain.txt').write_text("
                                     "repr('seed' in globals()))")
    out = tmp_path / "results"
    runs = run_all("smoke", results_dir=out, folder=folder, extra={"seed": 7})
    assert all(r.ok for r in runs), [r.error for r in runs]
    assert (out / "seed.txt").read_text() == "7" and (out / "plain.txt").read_text() == "False"
    meta = nbformat.read(out / "notebooks" / "smoke" / "01_plain.ipynb", as_version=4).metadata.papermill
    assert "seed" not in meta.parameters and meta.parameters["profile"] == "smoke"


def test_overrides_are_checked_against_the_notebooks_recipe(tmp_path):
    """A dotted setting in `-p overrides` is built into the notebook's recipe config before anything runs; the
    repository's notebook 11 (cross-encoder) is read as it is, no kernel started."""
    from rerank_lib.runner import NOTEBOOKS, ParameterError, check_parameters, notebook_parameters, recipe_call

    book = NOTEBOOKS / "11_cross_encoder_training.ipynb"
    declared = notebook_parameters(book)
    assert declared["overrides"] == {} and declared["seed"] == 13 and declared["variants"] is None
    module, name, _ = recipe_call(book, declared)
    assert (module, name) == ("rerank_lib.recipes.cross_encoder", "config")
    good = {"overrides": {"train.learning_rate": 1e-4}, "results_dir": str(tmp_path)}
    assert check_parameters([book], "smoke", good, {"overrides"}) == {book.name: good}
    with pytest.raises(ParameterError, match=r"^-p overrides: 11_cross_encoder_training.ipynb builds its settings "
                                             r"with rerank_lib.recipes.cross_encoder.config, which refuses them: "
                                             r"TypeError: unknown setting\(s\) \['train.lerning_rate'\]"):
        check_parameters([book], "smoke", {"overrides": {"train.lerning_rate": 1e-4}}, {"overrides"})
    with pytest.raises(ParameterError, match=r"ValueError: unknown variant\(s\) \['bogus'\]"):
        check_parameters([book], "smoke", {"variants": ["bogus"]}, {"variants"})
    with pytest.raises(ParameterError) as error:
        check_parameters([book], "smoke", {"learning_rate": 0.1}, {"learning_rate"})
    assert str(error.value) == ("-p learning_rate: not a parameter of 11_cross_encoder_training.ipynb; accepted: "
                                "depth, overrides, seed, seeds, variants; a recipe setting goes in "
                                "-p overrides '{\"train.learning_rate\": 0.1}'")
    before = dict(os.environ)
    assert check_parameters([book], "paper-tiny", good, {"overrides"}) == {book.name: good}
    assert dict(os.environ) == before  # paper-tiny's config turns the stand-ins on: not in the runner's process
