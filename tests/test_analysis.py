"""Results and sweep tables in the formats analysis tools read (optional extra ``analysis``): a Result
as an xarray Dataset and a pandas DataFrame, sweep tables as DataFrames and Parquet, phase diagrams as
DataArrays; round trips through files; what a sweep's CSV looks like to pandas; the one-line error when
the extra is missing; the notebook summaries and Result.plot, checked by content."""
from __future__ import annotations

import math
import sys
import textwrap

import numpy as np
import pytest

import diagsim
from diagsim.engine.labelled import config_from_attrs
from diagsim.errors import DiagsimError
from diagsim.optimizers import SGD, Adam, LabelNoise
from diagsim.sweep import Table, load_table, phase_array, phase_grid

pd = pytest.importorskip("pandas")
xr = pytest.importorskip("xarray")


@pytest.fixture(scope="module")
def problem():
    return diagsim.make_problem(6, 10, 2, seed=3)


@pytest.fixture(scope="module")
def result(problem):
    return diagsim.simulate(problem, Adam(lr=0.05, noise=LabelNoise(0.5)), steps=200, n_paths=3, seed=4,
                            n_records=6)


# --------------------------------------------------------------------------- Result -> xarray
def test_dataset_dims_coords_and_variables(result, problem):
    ds = result.to_xarray()
    n_rec, M, d = len(result.steps), result.n_paths, problem.d
    assert dict(ds.sizes) == {"step": n_rec, "path": M, "parameter": 2 * d, "coordinate": d}
    np.testing.assert_array_equal(ds["step"], result.steps)
    # a discrete optimizer: t = lr k, tau = lr^2 k
    np.testing.assert_allclose(ds["t"], 0.05 * result.steps, rtol=1e-15)
    np.testing.assert_allclose(ds["tau"], 0.05 ** 2 * result.steps, rtol=1e-15)
    np.testing.assert_array_equal(ds["path"], [0, 1, 2])
    for name, values in result.records.items():
        var = ds[name.replace("/", "_")]
        assert var.dims == ("step", "path") and var.attrs["record"] == name
        np.testing.assert_array_equal(var.values, values)
    assert {"precond_v_mean", "final_test_loss", "final_theta", "final_m", "final_v"} <= set(ds.data_vars)
    assert ds["final_theta"].dims == ("path", "parameter")
    np.testing.assert_array_equal(ds["final_theta"], result.final["theta"])
    assert list(ds["parameter"].values[[0, d - 1, d]]) == ["u0", f"u{d - 1}", "v0"]
    u, v = result.final["theta"][:, :d], result.final["theta"][:, d:]
    np.testing.assert_allclose(ds["final_w"], u * u - v * v, rtol=1e-15)        # "uu-vv"
    np.testing.assert_array_equal(ds["diverged_step"], [-1, -1, -1])
    # the test loss at path 1, last record, by label
    assert float(ds["test_loss"].sel(path=1, step=200)) == result.records["test_loss"][-1, 1]


def test_dataset_attributes_hold_the_configuration(result):
    ds = result.to_xarray()
    assert ds.attrs["model"] == "discrete" and ds.attrs["lr"] == 0.05 and ds.attrs["n_paths"] == 3
    assert isinstance(ds.attrs["optimizer"], str) and '"optimizer": "adam"' in ds.attrs["optimizer"]
    assert '"numpy"' in ds.attrs["versions"] and '"diagsim"' in ds.attrs["versions"]
    assert config_from_attrs(ds.attrs) == result.config


def test_dataset_netcdf_round_trip(result, tmp_path):
    ds = result.to_xarray()
    ds.to_netcdf(tmp_path / "run.nc")
    back = xr.load_dataset(tmp_path / "run.nc")
    xr.testing.assert_identical(back, ds)
    assert config_from_attrs(back.attrs) == result.config


def test_saved_and_loaded_result_gives_the_same_dataset(result, tmp_path):
    path = result.save(tmp_path / "run.npz")
    again = diagsim.load_result(path)
    xr.testing.assert_identical(again.to_xarray(), result.to_xarray())


def test_slow_flow_result_converts_too(problem):
    flow = diagsim.simulate(problem, SGD(lr=0.01, noise=LabelNoise(1.0)), tau=0.5, model="slow-flow",
                            model_options={"start": "gradient-flow", "dtau": 0.1})
    ds = flow.to_xarray()
    assert ds.sizes["path"] == 1 and ds.attrs["model"] == "slow-flow"
    np.testing.assert_array_equal(ds["trace_h"].values, flow.records["trace_h"])


# --------------------------------------------------------------------------- Result -> pandas
def test_dataframe_wide_has_one_row_per_step_and_path(result):
    df = result.to_dataframe()
    M = result.n_paths
    assert len(df) == len(result.steps) * M
    assert list(df.columns[:4]) == ["step", "t", "tau", "path"] and "precond/v_mean" in df.columns
    assert df["step"].dtype == np.int64 and df["path"].dtype == np.int64
    for i, k in enumerate(result.steps):
        for j, p in enumerate(result.paths):
            row = df.iloc[i * M + j]
            assert row["step"] == k and row["path"] == p
            for name, values in result.records.items():
                assert row[name] == values[i, j] or (math.isnan(row[name]) and math.isnan(values[i, j]))


def test_dataframe_long_pivots_back_to_wide(result):
    long = result.to_dataframe("long")
    assert list(long.columns) == ["step", "t", "tau", "path", "observable", "value"]
    assert len(long) == len(result.steps) * result.n_paths * len(result.records)
    wide = long.pivot(index=["step", "path"], columns="observable", values="value")
    for name, values in result.records.items():
        np.testing.assert_array_equal(wide[name].to_numpy().reshape(values.shape), values)
    with pytest.raises(DiagsimError, match="layout"):
        result.to_dataframe("tidy")


# --------------------------------------------------------------------------- the missing extra
@pytest.mark.parametrize("module, call", [
    ("xarray", lambda r, t: r.to_xarray()),
    ("pandas", lambda r, t: r.to_dataframe()),
    ("pandas", lambda r, t: t.to_dataframe()),
    ("xarray", lambda r, t: phase_array(t, "a", "b", "c")),
])
def test_missing_extra_is_a_one_line_error_naming_it(monkeypatch, result, module, call):
    monkeypatch.setitem(sys.modules, module, None)       # makes ``import module`` fail
    table = Table({"a": [1, 2], "b": [1, 1], "c": [0.5, 1.5]})
    with pytest.raises(DiagsimError) as e:
        call(result, table)
    msg = str(e.value)
    assert "\n" not in msg and f"needs {module}" in msg and msg.endswith('pip install -e ".[analysis]"')


# --------------------------------------------------------------------------- sweep tables
def mixed_job(config: dict) -> dict:
    """A sweep job with an int, a float and a bool summary; the job with x = fail_at fails (a DiagsimError,
    which the sweep records)."""
    x = int(config["x"])
    if x == config["fail_at"]:
        raise DiagsimError(f"job x={x} fails by design")
    return {"count": x * 3, "value": x / 4 + config["lr"], "big": bool(x > 1)}


@pytest.fixture(scope="module")
def sweep_files(tmp_path_factory):
    """The table files ``diagsim sweep`` writes for a 3 x 2 x 2 grid whose jobs with x = 2 fail."""
    from diagsim.cli.main import main
    tmp = tmp_path_factory.mktemp("sweep")
    cfg = tmp / "mixed.toml"
    cfg.write_text(textwrap.dedent(f"""
        [sweep]
        name = "mixed"
        job = "{__name__}:mixed_job"
        [base]
        fail_at = 2
        [grid]
        x = [1, 2, 3]
        name = ["sgd", "adam"]
        lr = [0.5, 2.0]
    """))
    out = tmp / "out"
    assert main(["sweep", "--config", str(cfg), "--cache", str(tmp / "cache"), "--out", str(out),
                 "--no-progress"]) == 0
    return out / "mixed.npz", out / "mixed.csv"


def test_sweep_csv_opens_in_pandas_with_the_right_dtypes(sweep_files):
    npz, csv = sweep_files
    exact = load_table(npz)                                   # the lossless table: the reference
    frame = pd.read_csv(csv)
    assert list(frame.columns) == exact.names
    kinds = {name: exact[name].dtype.kind for name in exact.names}
    assert kinds == {"index": "i", "key": "U", "status": "U", "x": "i", "name": "U", "lr": "f",
                     "count": "f", "value": "f", "big": "f", "error": "U"}
    failed = exact["status"] == "failed"
    assert failed.sum() == 4 and np.all(exact["x"][failed] == 2)
    for name, kind in kinds.items():
        col = frame[name]
        if kind == "i":
            assert col.dtype == np.int64, name
            np.testing.assert_array_equal(col.to_numpy(), exact[name])
        elif kind == "f":
            assert col.dtype == np.float64, name
            np.testing.assert_array_equal(col.to_numpy(), exact[name])     # NaN where missing, same bits
            summary = name in ("count", "value", "big")
            assert np.isnan(col.to_numpy()[failed]).all() == summary and np.isfinite(col.to_numpy()[~failed]).all()
        else:
            assert pd.api.types.is_string_dtype(col.dtype), name
            present = exact[name] != ""
            assert list(col[present]) == list(exact[name][present])
            assert col[~present].isna().all()                 # an empty cell is missing: NaN
    # the counts of the jobs that ran are whole numbers (a float column only because of the failed rows)
    np.testing.assert_array_equal(frame["count"][~failed], 3 * exact["x"][~failed])


def test_table_dataframe_keeps_types_and_files_round_trip(sweep_files, tmp_path):
    npz, csv = sweep_files
    exact = load_table(npz)
    frame = exact.to_dataframe()
    assert list(frame.columns) == exact.names and len(frame) == len(exact)
    assert frame["index"].dtype == np.int64 and frame["lr"].dtype == np.float64
    assert pd.api.types.is_string_dtype(frame["status"].dtype)
    for name in exact.names:
        np.testing.assert_array_equal(frame[name].to_numpy().astype(exact[name].dtype), exact[name])
    # one loader, every format, the same frame
    pd.testing.assert_frame_equal(load_table(npz, as_frame=True), frame)
    pd.testing.assert_frame_equal(load_table(csv, as_frame=True), frame)
    pytest.importorskip("pyarrow")
    pq = exact.save(tmp_path / "mixed.parquet")
    pd.testing.assert_frame_equal(load_table(pq, as_frame=True), frame)
    back = load_table(pq)
    assert back.names == exact.names
    for name in exact.names:
        assert back[name].dtype == exact[name].dtype, name
        np.testing.assert_array_equal(back[name], exact[name])
    assert Table.from_dataframe(frame).names == exact.names


def test_bool_and_int_columns_survive_every_format(tmp_path):
    table = Table({"flag": np.array([True, False]), "n": np.array([1, 2]), "x": np.array([0.5, np.nan]),
                   "s": np.array(["a", "b"])})
    formats = [".npz", ".csv"] + ([".parquet"] if _has("pyarrow") else [])
    for suffix in formats:
        back = load_table(table.save(tmp_path / f"t{suffix}"))
        assert [back[k].dtype.kind for k in back.names] == ["b", "i", "f", "U"], suffix
        for k in table.names:
            np.testing.assert_array_equal(back[k], table[k])


def _has(module: str) -> bool:
    from diagsim.optional import available
    return available(module)


def test_phase_array_is_labelled_by_the_swept_values():
    # two seeds per cell, aggregated by their mean; one cell without a finite value
    table = Table({"n": np.array([10, 10, 20, 20, 10, 10, 20, 20]),
                   "k": np.array([1, 1, 1, 1, 3, 3, 3, 3]),
                   "seed": np.array([0, 1, 0, 1, 0, 1, 0, 1]),
                   "ok": np.array([1.0, 0.0, 1.0, 1.0, 0.0, 0.0, np.nan, np.nan])})
    da = phase_array(table, "n", "k", "ok")
    assert da.dims == ("k", "n") and da.name == "ok" and da.attrs["agg"] == "mean"
    np.testing.assert_array_equal(da["n"], [10, 20])
    np.testing.assert_array_equal(da["k"], [1, 3])
    np.testing.assert_array_equal(da.values, [[0.5, 1.0], [0.0, np.nan]])
    assert float(da.sel(n=20, k=1)) == 1.0
    xs, ys, Z = phase_grid(table, "n", "k", "ok", agg="max")
    np.testing.assert_array_equal(phase_array(table, "n", "k", "ok", agg="max").values, Z)


# --------------------------------------------------------------------------- notebook summaries
def test_result_repr_and_html_summarize_the_run(result):
    text = repr(result)
    assert len(text.splitlines()) == 2 + len(result.final_observables)
    first = text.splitlines()[0]
    assert "discrete adam (lr=0.05)" in first and "3 paths x 200 steps" in first and "6 records" in first
    v = result.final_observables["test_loss"]
    mean, se = v.mean(), v.std(ddof=1) / math.sqrt(3)
    line = next(ln for ln in text.splitlines() if ln.strip().startswith("test_loss "))
    m, s = line.split()[1], line.split()[3]
    assert float(m) == pytest.approx(mean, rel=1e-5) and float(s) == pytest.approx(se, rel=0.05)
    page = result._repr_html_()
    assert page.count("<tr>") == 1 + len(result.final_observables) and "<td>test_loss</td>" in page


def test_table_and_report_reprs(sweep_files, tmp_path):
    table = load_table(sweep_files[0])
    text = repr(table)
    assert text.startswith("<diagsim Table: 12 rows x 10 columns>")
    assert "index (int64)" in text and "name (str)" in text and "value (float64)" in text
    page = table._repr_html_()
    assert page.count("<tr>") == 1 + 10 and "2 more rows" in page
    from diagsim.sweep import run_sweep
    report = run_sweep({"sweep": {"name": "r", "job": f"{__name__}:mixed_job"},
                        "base": {"fail_at": 0, "lr": 1.0}, "grid": {"x": [1, 2]}}, tmp_path / "c",
                       progress=False)
    assert repr(report) == f"<diagsim SweepReport: {report.line()}>"
    assert "<td>computed</td><td>2</td>" in report._repr_html_()


# --------------------------------------------------------------------------- Result.plot
def test_plot_draws_the_ensemble_means_with_labels(result):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    axes = result.plot()
    assert len(axes) == 4
    assert [a.get_ylabel() for a in axes] == ["test loss", "‖w‖₁", "support size", "tr H"]
    for a, name in zip(axes, ["test_loss", "l1", "support", "trace_h"]):
        (line,) = a.get_lines()
        np.testing.assert_array_equal(line.get_xdata(), result.steps)
        np.testing.assert_allclose(line.get_ydata(), result.records[name].mean(axis=1), rtol=1e-14)
        assert line.get_label() == "adam (discrete)" and a.get_xlabel() == "step"
        assert len(a.collections) == 1                       # the ±2 se band
    plt.close(axes[0].figure)


def test_plot_overlays_on_given_axes_and_checks_them(result, problem):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    other = diagsim.simulate(problem, SGD(lr=0.05, noise=LabelNoise(0.5)), steps=200, n_paths=2, seed=4,
                             n_records=6)
    fig, ax = plt.subplots(1, 2)
    result.plot(ax, observables=["train_loss", "trace_sqrt_diag_gn"], x="tau", band=0)
    out = other.plot(ax, observables=["train_loss", "trace_sqrt_diag_gn"], x="tau", label="SGD", color="k")
    assert list(out) == list(ax)
    lines = ax[1].get_lines()
    assert [ln.get_label() for ln in lines] == ["adam (discrete)", "SGD"] and lines[1].get_color() == "k"
    np.testing.assert_allclose(lines[1].get_xdata(), 0.05 ** 2 * other.steps, rtol=1e-15)
    np.testing.assert_allclose(lines[1].get_ydata(), other.records["trace_sqrt_diag_gn"].mean(axis=1),
                               rtol=1e-14)
    assert ax[0].get_xlabel() == "τ = lr·t" and len(ax[0].collections) == 1   # only the second run has a band
    with pytest.raises(DiagsimError, match="one Axes per observable"):
        result.plot(ax)
    with pytest.raises(DiagsimError, match="was not recorded"):
        result.plot(observables=["sharpness"])
    plt.close(fig)
