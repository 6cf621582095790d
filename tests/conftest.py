import os
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
