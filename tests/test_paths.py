"""The data root: a folder that is named but missing is an error naming it, never a silent fallback."""
import pytest

from rerank_lib import paths
from rerank_lib.data import load_dataset


def test_explicit_data_root_must_exist(tmp_path, monkeypatch):
    monkeypatch.delenv("RERANK_DATA_DIR", raising=False)
    assert paths.data_root(tmp_path) == tmp_path
    missing = tmp_path / "not-here"
    with pytest.raises(FileNotFoundError, match=f"data root {missing} does not exist \\(data_root parameter\\)"):
        paths.data_root(missing)


def test_env_data_root_must_exist(tmp_path, monkeypatch):
    monkeypatch.setenv("RERANK_DATA_DIR", str(tmp_path))
    assert paths.data_root() == tmp_path
    other = tmp_path / "explicit"
    other.mkdir()
    assert paths.data_root(other) == other  # the parameter wins over the variable
    monkeypatch.setenv("RERANK_DATA_DIR", str(tmp_path / "typo"))
    with pytest.raises(FileNotFoundError, match=r"typo does not exist \(\$RERANK_DATA_DIR\)"):
        paths.data_root()


def test_default_is_the_shared_folder_or_none(tmp_path, monkeypatch):
    monkeypatch.delenv("RERANK_DATA_DIR", raising=False)
    monkeypatch.setattr(paths, "PROJECT_ROOT", tmp_path / "project")
    assert paths.data_root() is None
    (tmp_path / "shared" / "data").mkdir(parents=True)
    assert paths.data_root() == tmp_path / "shared" / "data"


def test_loader_with_a_missing_root_names_it(tmp_path, monkeypatch, shared_data):
    monkeypatch.setenv("RERANK_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_dataset("scifact", "test", root=tmp_path / "nowhere", download=False)
