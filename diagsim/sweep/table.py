"""Collect a sweep's cached results into a table: one row per grid point, one column per swept key and
per summary value, saved as ``.npz`` (lossless), ``.csv`` or, with pyarrow, ``.parquet``.

:meth:`Table.to_dataframe` and ``load_table(path, as_frame=True)`` give a pandas DataFrame with the
same column types (the optional extra ``analysis``).

Only verified cache entries are read (:meth:`~diagsim.sweep.cache.Cache.check`); a corrupt entry's row
says so and shows no values. Tables are written atomically with the permissions the umask allows
(:mod:`diagsim.storage`).
"""
from __future__ import annotations

import csv
import html
import io
import json
import math
from pathlib import Path

import numpy as np

from ..errors import DiagsimError, check_choice
from ..optional import require
from ..storage import write_bytes_atomic, write_npz_atomic, write_text_atomic
from .runner import Plan, plan_sweep

META_COLUMNS = ("index", "key", "status")
#: the file formats of :meth:`Table.save` and :func:`load_table`, by suffix
SUFFIXES = (".npz", ".csv", ".parquet")
#: rows a notebook shows of a table
HTML_ROWS = 10


def _column(values: list) -> np.ndarray:
    """The tightest dtype: bool, int64, float64 (None -> NaN) or str."""
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, (bool, np.bool_)) for v in present) and len(present) == len(values):
        return np.array(values, dtype=bool)
    if all(isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) for v in present) \
            and len(present) == len(values) and present:
        return np.array(values, dtype=np.int64)
    if all(isinstance(v, (int, float, np.integer, np.floating, bool, np.bool_)) for v in present):
        return np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)
    return np.array([v if isinstance(v, str) else ("" if v is None else json.dumps(v)) for v in values],
                    dtype=str)


class Table:
    """Columns of equal length (a dict of 1-D NumPy arrays), in insertion order.

    ``table["optimizer.lr"]`` is a column; ``table.where({"optimizer.optimizer": "adam"})`` the rows that
    match; ``table.save("out.npz")`` / ``"out.csv"`` / ``"out.parquet"``; :func:`load_table` reads each
    back; :meth:`to_dataframe` is the table in pandas. Column types: bool, int64, float64 (NaN where a
    value is missing) or str.
    """

    def __init__(self, columns: dict):
        cols = {str(k): np.asarray(v) for k, v in columns.items()}
        lens = {len(v) for v in cols.values()}
        if len(lens) > 1:
            raise DiagsimError(f"table columns must have equal lengths, got {sorted(lens)}")
        self.columns = cols

    @classmethod
    def from_rows(cls, rows: list[dict]) -> "Table":
        names: list[str] = []
        for r in rows:
            names += [k for k in r if k not in names]
        return cls({k: _column([r.get(k) for r in rows]) for k in names})

    @classmethod
    def from_dataframe(cls, frame) -> "Table":
        """The table of a pandas DataFrame (the inverse of :meth:`to_dataframe`): bool, integer and float
        columns keep their NumPy types, any other column becomes str."""
        cols = {}
        for name in frame.columns:
            values = frame[name].to_numpy()
            if values.dtype.kind not in "biuf":
                values = np.array([str(v) for v in values], dtype=str)
            elif values.dtype.kind in "iu":
                values = values.astype(np.int64)
            cols[str(name)] = values
        return cls(cols)

    @property
    def names(self) -> list[str]:
        return list(self.columns)

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self.columns:
            raise DiagsimError(f"no column {name!r} in the table; columns: {', '.join(self.columns)}")
        return self.columns[name]

    def __contains__(self, name: str) -> bool:
        return name in self.columns

    def mask(self, where: dict | None) -> np.ndarray:
        m = np.ones(len(self), dtype=bool)
        for k, v in (where or {}).items():
            col = self[k]
            if isinstance(v, (list, tuple)):
                m &= np.isin(col, np.asarray(v, dtype=col.dtype))
            else:
                m &= col == np.asarray(v).astype(col.dtype)
        return m

    def where(self, where: dict | None = None, mask: np.ndarray | None = None) -> "Table":
        m = self.mask(where)
        if mask is not None:
            m &= mask
        return Table({k: v[m] for k, v in self.columns.items()})

    def rows(self) -> list[dict]:
        return [{k: v[i].item() for k, v in self.columns.items()} for i in range(len(self))]

    # ---------------------------------------------------------------- display
    def _describe_columns(self) -> list[str]:
        return [f"{k} ({_dtype_name(v)})" for k, v in self.columns.items()]

    def __repr__(self) -> str:
        return (f"<diagsim Table: {len(self)} rows x {len(self.columns)} columns>\n"
                f"columns: {', '.join(self._describe_columns())}")

    def _repr_html_(self) -> str:
        n = min(len(self), HTML_ROWS)
        head = "".join(f"<th>{html.escape(k)}</th>" for k in self.names)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(_short_cell(self.columns[k][i]))}</td>"
                                        for k in self.names) + "</tr>" for i in range(n))
        more = f"<p>... {len(self) - n} more rows</p>" if len(self) > n else ""
        return (f"<div><strong>diagsim Table</strong>: {len(self)} rows x {len(self.columns)} columns"
                f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{more}</div>")

    # ---------------------------------------------------------------- i/o
    def to_dataframe(self):
        """The table as a ``pandas.DataFrame`` (needs the optional extra ``analysis``): one column per
        column, in order, with the same types (bool, int64, float64, and strings as pandas stores them)."""
        pd = require("pandas", "Table.to_dataframe")
        return pd.DataFrame(dict(self.columns))

    def to_csv(self) -> str:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(self.names)
        for i in range(len(self)):
            w.writerow([_csv_cell(self.columns[k][i]) for k in self.names])
        return buf.getvalue()

    def save(self, path) -> Path:
        """Write the table, atomically, in the format of the suffix: ``.npz`` (exact, column order kept),
        ``.csv`` (floats as repr, ``nan`` where missing) or ``.parquet`` (needs pandas and pyarrow)."""
        path = Path(path)
        check_choice("table file suffix", path.suffix, SUFFIXES)
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".csv":
            write_text_atomic(path, self.to_csv())
        elif path.suffix == ".parquet":
            require("pyarrow", "writing a table as Parquet")
            buf = io.BytesIO()
            self.to_dataframe().to_parquet(buf, index=False)
            write_bytes_atomic(path, buf.getvalue())
        else:
            write_npz_atomic(path, {f"{i:04d}:{k}": v for i, (k, v) in enumerate(self.columns.items())})
        return path


def _short_cell(x) -> str:
    x = x.item() if hasattr(x, "item") else x
    return f"{x:.6g}" if isinstance(x, float) else str(x)


def _csv_cell(x) -> str:
    x = x.item() if hasattr(x, "item") else x
    if isinstance(x, float):
        return "nan" if math.isnan(x) else repr(x)
    return str(x)


def _dtype_name(values: np.ndarray) -> str:
    return "str" if values.dtype.kind == "U" else str(values.dtype)


def load_table(path, *, as_frame: bool = False):
    """Read a table written by :meth:`Table.save`.

    Parameters
    ----------
    path : str or Path
        A ``.npz`` (read exactly), ``.csv`` (column types inferred: bool, int64, float64, else str) or
        ``.parquet`` file (needs pandas and pyarrow); any other suffix is read as CSV.
    as_frame : bool
        Return a ``pandas.DataFrame`` (:meth:`Table.to_dataframe`) instead of a :class:`Table`.

    Returns
    -------
    Table or pandas.DataFrame
    """
    table = _read_table(Path(path))
    return table.to_dataframe() if as_frame else table


def _read_table(path: Path) -> Table:
    if not path.is_file():
        raise DiagsimError(f"table file {str(path)!r} does not exist")
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as f:
            items = sorted(f.files)
            return Table({name.split(":", 1)[1]: f[name] for name in items})
    if path.suffix == ".parquet":
        pd = require("pandas", "reading a Parquet table")
        require("pyarrow", "reading a Parquet table")
        return Table.from_dataframe(pd.read_parquet(path))
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        raise DiagsimError(f"table file {str(path)!r} is empty")
    head, body = rows[0], rows[1:]
    cols = {}
    for j, name in enumerate(head):
        vals = [r[j] for r in body]
        cols[name] = _parse_csv_column(vals)
    return Table(cols)


def _parse_csv_column(vals: list[str]) -> np.ndarray:
    if vals and all(v in ("True", "False") for v in vals):
        return np.array([v == "True" for v in vals])
    try:
        return np.array([int(v) for v in vals], dtype=np.int64)
    except ValueError:
        pass
    try:
        return np.array([float(v) for v in vals], dtype=np.float64)
    except ValueError:
        return np.array(vals, dtype=str)


# --------------------------------------------------------------------------- collecting
def _unusable_error(plan: Plan, states: dict) -> DiagsimError | None:
    """The error for jobs that are missing or corrupt in the cache (None if there are none)."""
    missing = sum(st.status == "missing" for st in states.values())
    corrupt = [k for k, st in states.items() if st.status == "corrupt"]
    if not missing and not corrupt:
        return None
    parts = [f"{missing} of {len(states)} jobs of sweep {plan.sweep.name!r} are not in the cache "
             f"{str(plan.cache.root)!r}"] if missing else []
    if corrupt:
        n = len(corrupt)
        parts.append(f"{n} corrupt cache entr{'y' if n == 1 else 'ies'} of sweep {plan.sweep.name!r} (first, "
                     f"{plan.describe(corrupt[0])}: {states[corrupt[0]].reason})")
    verb = "compute them first" if missing else "recompute them"
    return DiagsimError(f"{'; '.join(parts)}; {verb} ({plan.repair_command()})")


def load_results(sweep, cache_dir, *, job=None, quick: bool = False, missing: str = "error"):
    """The cached results of a sweep: a list of ``(Job, result or None)`` in expansion order.

    ``missing``: "error" (raise if any job is missing or its entry corrupt), "skip" or "none" (None for
    missing, corrupt and failed jobs). Failed jobs (a recorded DiagsimError) give None.
    """
    check_choice("missing", missing, ("error", "skip", "none"))
    plan = plan_sweep(sweep, cache_dir, job=job, quick=quick)
    states = plan.check()
    if missing == "error" and (err := _unusable_error(plan, states)) is not None:
        raise err
    out, loaded = [], {}
    for j in plan.jobs:
        if states[j.key].status != "ok":
            if missing != "skip":
                out.append((j, None))
            continue
        if j.key not in loaded:
            loaded[j.key] = plan.kind.load(plan.cache.result_path(j.key))
        out.append((j, loaded[j.key]))
    return out


def collect(sweep, cache_dir, *, job=None, quick: bool = False, missing: str = "error") -> Table:
    """The sweep's table: ``index``, ``key``, ``status`` ("ok" | "failed" | "missing" | "corrupt"), one
    column per swept key, then the summary columns of the job kind (NaN where a job failed, is missing
    or its entry is corrupt), and ``error`` ("" for ok and missing jobs) when a job failed or an entry
    is corrupt: the failure's message, or what is wrong with the entry and the command that recomputes
    it. Values of a corrupt entry are never read.

    ``missing``: "error" (raise if a job is missing or corrupt) or "nan" (keep its row with NaNs).
    """
    check_choice("missing", missing, ("error", "nan"))
    plan = plan_sweep(sweep, cache_dir, job=job, quick=quick)
    states = plan.check()
    if missing == "error" and (err := _unusable_error(plan, states)) is not None:
        raise err
    summaries: dict[str, dict] = {}
    errors: dict[str, str] = {}
    for key, st in states.items():
        if st.status == "ok":
            obj = plan.kind.load(plan.cache.result_path(key))
            summaries[key] = plan.kind.summarize(obj, plan.sweep.summary, plan.unique[key].config)
        elif st.status == "failed":
            errors[key] = str(st.error.get("message", ""))
        elif st.status == "corrupt":
            errors[key] = f"{plan.describe(key)}: {st.reason}; recompute it with {plan.repair_command()}"
    rows = []
    for j in plan.jobs:
        row = {"index": j.index, "key": j.key, "status": states[j.key].status}
        for k in plan.sweep.keys:
            row[k] = j.params[k]
        row.update(summaries.get(j.key, {}))
        if errors:
            row["error"] = errors.get(j.key, "")
        rows.append(row)
    return Table.from_rows(rows)
