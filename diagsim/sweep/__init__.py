"""Parameter sweeps: a base configuration plus a grid, run serially, on a process pool or on Dask, with
every job's result cached on disk under a hash of (config, diagsim version).

    >>> from diagsim.sweep import load_sweep, run_sweep, collect, plot_phase
    >>> sweep = load_sweep("sweep.toml")                            # doctest: +SKIP
    >>> run_sweep(sweep, "results/cache", backend="local")          # doctest: +SKIP
    >>> table = collect(sweep, "results/cache"); table.save("table.csv")   # doctest: +SKIP

Modules: :mod:`~diagsim.sweep.grid` (format, expansion), :mod:`~diagsim.sweep.cache` (keys, entries
and their manifests, integrity checks, claims of concurrent sweeps), :mod:`~diagsim.sweep.jobs` (job
kinds), :mod:`~diagsim.sweep.simjob` (the ``simulate`` job), :mod:`~diagsim.sweep.backends` (serial /
local / dask, and what happens when a worker dies), :mod:`~diagsim.sweep.runner` (run_sweep),
:mod:`~diagsim.sweep.table` (collect, Table, load_table; pandas DataFrames), :mod:`~diagsim.sweep.plot`
(phase diagrams; as xarray DataArrays).
"""
from .cache import Cache, job_key
from .grid import Job, Sweep, load_sweep, sweep_from_dict
from .jobs import JobKind, kind_for
from .plot import phase_array, phase_grid, plot_phase, save_figure
from .runner import Plan, SweepReport, plan_sweep, run_sweep
from .table import Table, collect, load_results, load_table

__all__ = ["Sweep", "Job", "load_sweep", "sweep_from_dict", "plan_sweep", "Plan", "run_sweep",
           "SweepReport", "collect", "load_results", "Table", "load_table", "phase_grid", "phase_array", "plot_phase",
           "save_figure", "Cache", "job_key", "JobKind", "kind_for"]
