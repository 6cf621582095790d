"""Results: the one record format, its atomic files, the md/csv/LaTeX tables and figure helpers."""
from .figures import plot_cost_quality, plot_curve, plot_metric_bars, plot_per_query_delta, save_figure
from .record import (
    Record, git_commit, hardware_info, load_per_query, load_records, make_record, package_versions, record_path,
    write_record,
)
from .tables import Row, Table, anchor_table, build_tables, can_change, fold_means, leaderboards, record_stage, results_frame

__all__ = [
    "Record", "make_record", "write_record", "load_records", "load_per_query", "record_path", "git_commit",
    "package_versions", "hardware_info", "anchor_table", "build_tables", "fold_means", "results_frame",
    "leaderboards", "Table", "Row", "record_stage", "can_change",
    "plot_metric_bars", "plot_cost_quality", "plot_curve", "plot_per_query_delta", "save_figure",
]
