import os
import shutil
from pathlib import Path

import pytest

from rerank_lib.paths import data_root

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    root = data_root()
    if root is None:
        pytest.skip("no data root: set RERANK_DATA_DIR or put shared/ beside the project")
    return root


@pytest.fixture()
def private_cache(tmp_path, monkeypatch):
    """Embedding/download caches in a temporary folder, so a test never reads another run's cache."""
    monkeypatch.setenv("RERANK_CACHE_DIR", str(tmp_path))
    return tmp_path


@pytest.fixture(scope="module")
def encoder():
    """The offline MiniLM bi-encoder in fp32 (shared per test module: loading it takes seconds)."""
    from rerank_lib.retrievers import BiEncoder

    return BiEncoder("minilm-l6", device="cpu", bf16=False)


@pytest.fixture(scope="module")
def module_scratch(request, tmp_path_factory):
    """Folders one test module shares (a results folder, a cache of trained checkpoints), removed when the module
    ends unless one of its tests failed (then kept for inspection). Kept to the session's end, every module's
    checkpoints would sit on disk at once: over 20 GB, more than a CI machine has free."""
    made, failed_before = [], request.session.testsfailed

    def make(name: str) -> Path:
        made.append(tmp_path_factory.mktemp(name))
        return made[-1]

    yield make
    if request.session.testsfailed == failed_before:
        for path in made:
            shutil.rmtree(path, ignore_errors=True)
