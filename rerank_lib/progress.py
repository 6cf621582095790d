"""Progress bars: widgets when a person watches a notebook, a few compact text lines in executed copies.

Why a switch: in JupyterLab `tqdm.auto` draws an ipywidgets bar, which is what a reader wants; but a notebook
executed headlessly (papermill, `rerank_lib.runner`) would store every such bar as widget state that renders as
nothing, or as "HBox(...)", in the saved copy. The runner sets RERANK_PROGRESS=text for the kernels it starts;
then `tqdm` here is plain text tqdm that refreshes at most every TEXT_MININTERVAL seconds (plus its first and
last line), so a bar leaves a handful of lines in the executed notebook.

RERANK_PROGRESS: 'auto' (default: tqdm.auto, widgets in Jupyter, text in a terminal) or 'text'. In text mode each
refresh is its own line (LineStream): a stored copy keeps no carriage returns, whose overwritten updates would all
be saved; and a new postfix (the training loop's loss, set at every logged step) waits for the next timed refresh
(TextBar), where tqdm would redraw the bar at once, a line per logged step. Two library log lines are tidied once, here, by targeted logging filters (quiet_known_noise): transformers'
load report (a table per model load: the fresh heads and decoders this project builds are expected to miss keys)
becomes one line with its paths shown relative (`paths.shown_in`), and accelerate's notice that a tied weight was
not saved twice is dropped (every tied-embedding model triggers it at each checkpoint, and reloading is tested).
"""
from __future__ import annotations

import logging
import os
import sys
import warnings

from tqdm import tqdm as text_tqdm

from .paths import shown_in

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
        kwargs.setdefault("maxinterval", max(kwargs["mininterval"], TEXT_MININTERVAL))  # tqdm's monitor redraws a
        # bar idle for maxinterval (default 10 s): no more often than mininterval here
        kwargs.setdefault("ascii", " -=")  # "=" for done, "-" for a part: no "#<digit>" that reads as an issue number
        kwargs["dynamic_ncols"] = False  # a stored copy has no terminal width to follow
        kwargs.setdefault("ncols", 100)
        kwargs.setdefault("file", LineStream(sys.stderr))
        return TextBar(*args, **kwargs)
    from tqdm.auto import tqdm as auto_tqdm  # imported only here: in a headless kernel it warns about widgets

    return auto_tqdm(*args, **kwargs)


class TextBar(text_tqdm):
    """Text tqdm whose postfix shows at the bar's next timed refresh: tqdm's set_postfix redraws at once by default,
    which in a stored copy is a line per call (the training loop sets its loss at every logged step)."""

    def set_postfix(self, ordered_dict=None, refresh=True, **kwargs):
        super().set_postfix(ordered_dict, refresh=False, **kwargs)

    def set_postfix_str(self, s="", refresh=True):
        super().set_postfix_str(s, refresh=False)


class LineStream:
    """A stream for text tqdm that turns each carriage-return refresh into its own line, without the padding."""

    def __init__(self, stream):
        self.stream = stream

    def write(self, text: str) -> int:
        for line in text.replace("\r", "\n").split("\n"):
            if line.strip():
                self.stream.write(line.rstrip() + "\n")
        return len(text)

    def flush(self) -> None:
        self.stream.flush()


def _tidy_load_report(record: logging.LogRecord) -> bool:
    """A log filter: transformers' load report in one line (which keys were missing / unexpected), paths relative."""
    if isinstance(record.msg, str):
        record.msg = shown_in(one_line_load_report(record.msg))
    return True


def one_line_load_report(message: str) -> str:
    """A transformers LOAD REPORT table (a dozen lines per model load) as its first line plus the keys by status;
    any other message unchanged."""
    if "LOAD REPORT" not in message:
        return message
    lines = message.splitlines()
    keys: dict[str, list[str]] = {}
    for line in lines[1:]:
        cells = [cell.strip() for cell in line.split("|")]
        if len(cells) >= 2 and cells[1].isupper() and cells[0] and cells[0] != "Key":
            keys.setdefault(cells[1], []).append(cells[0])
    if not keys:
        return message
    found = "; ".join(f"{status}: {', '.join(names)}" for status, names in keys.items())
    return f"{lines[0]} ({found})"


def _drop_shared_tensor_notice(record: logging.LogRecord) -> bool:
    return "Removed shared tensor" not in str(record.msg)  # accelerate prefixes the process rank


def _format_warning_shown(message, category, filename, lineno, line=None) -> str:
    """Python's warning text with the warning's file shown from its root (`<site-packages>/...`): a library's
    deprecation warning otherwise prints this machine's path into an executed notebook."""
    return shown_in(_PLAIN_FORMAT(message, category, filename, lineno, line))


_PLAIN_FORMAT = warnings.formatwarning


def quiet_known_noise() -> None:
    """Install the targeted log filters (once per process; see the module docstring for why each)."""
    if warnings.formatwarning is _PLAIN_FORMAT:
        warnings.formatwarning = _format_warning_shown
    for name, keep in (("transformers.modeling_utils", _tidy_load_report),
                       ("accelerate.utils.other", _drop_shared_tensor_notice)):
        if keep not in logging.getLogger(name).filters:
            logging.getLogger(name).addFilter(keep)


quiet_known_noise()
