"""Progress bars: widgets when a person watches a notebook, a few compact text lines in executed copies.

Why a switch: in JupyterLab `tqdm.auto` draws an ipywidgets bar, which is what a reader wants; but a notebook
executed headlessly (papermill, `rerank_lib.runner`) would store every such bar as widget state that renders as
nothing, or as "HBox(...)", in the saved copy. The runner sets RERANK_PROGRESS=text for the kernels it starts;
then `tqdm` here is plain text tqdm that refreshes at most every TEXT_MININTERVAL seconds (plus its first and
last line), so a bar leaves a handful of lines in the executed notebook.

RERANK_PROGRESS: 'auto' (default: tqdm.auto, widgets in Jupyter, text in a terminal) or 'text'.
"""
from __future__ import annotations

import os

from tqdm import tqdm as text_tqdm
from tqdm.auto import tqdm as auto_tqdm

__all__ = ["ENV", "MODES", "TEXT_MININTERVAL", "mode", "tqdm"]

ENV = "RERANK_PROGRESS"
MODES = ("auto", "text")
TEXT_MININTERVAL = 30.0  # seconds between two text refreshes of one bar


def mode() -> str:
    """The progress mode from $RERANK_PROGRESS ('auto' when unset)."""
    value = os.environ.get(ENV, "auto").strip().lower() or "auto"
    if value not in MODES:
        raise ValueError(f"${ENV}={value!r}: must be one of {MODES}")
    return value


def tqdm(*args, **kwargs):
    """A tqdm bar (same arguments as tqdm): tqdm.auto's, or compact text when $RERANK_PROGRESS is 'text'."""
    if mode() == "text":
        kwargs.setdefault("mininterval", TEXT_MININTERVAL)
        kwargs.setdefault("ascii", True)
        kwargs["dynamic_ncols"] = False  # a stored copy has no terminal width to follow
        kwargs.setdefault("ncols", 100)
        return text_tqdm(*args, **kwargs)
    return auto_tqdm(*args, **kwargs)
