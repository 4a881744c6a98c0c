"""A :class:`~diagsim.engine.result.Result` as labelled arrays (xarray) and as a table (pandas), the
formats that analysis and plotting libraries read. Both packages are optional (the extra ``analysis``)
and imported only here, when a conversion is asked for.

Names. Every recorded observable keeps its name, except that the ``/`` of the preconditioner
statistics becomes ``_`` (``precond/v_mean`` -> ``precond_v_mean``; netCDF does not allow ``/`` in
names); the original name is kept in the variable's attribute ``record``. Final states are
``final_<name>`` (``final_theta``, ``final_m``, ...), the final end-to-end vector is ``final_w``, the
observables of the final state are ``final_<observable>``.

Attributes. Each top-level entry of the result's ``config`` is an attribute of the Dataset: numbers and
strings as they are, anything else (nested tables, lists, booleans, None) as a JSON string, so that the
Dataset can be written to netCDF; :func:`config_from_attrs` reads the configuration back.
"""
from __future__ import annotations

import json

import numpy as np

from ..optional import require

#: Dataset attributes besides the configuration's entries: the run bookkeeping (elapsed seconds, resumes)
#: as JSON, the order of the configuration's entries, and which of them are JSON strings
INFO_ATTR, KEYS_ATTR, JSON_KEYS_ATTR = "diagsim_info", "diagsim_config_keys", "diagsim_json_keys"


def variable_name(record: str) -> str:
    """The Dataset / DataFrame name of a recorded observable (``/`` -> ``_``)."""
    return record.replace("/", "_")


def _attr(value):
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return value
    return json.dumps(value)


def config_from_attrs(attrs: dict) -> dict:
    """The run configuration stored in a Dataset's attributes by :func:`to_xarray` (inverse of the JSON
    encoding of nested entries)."""
    encoded = set(json.loads(attrs[JSON_KEYS_ATTR]))
    out = {}
    for k in json.loads(attrs[KEYS_ATTR]):
        v = attrs[k]
        if k in encoded:
            v = json.loads(v)
        elif isinstance(v, np.generic):
            v = v.item()
        out[k] = v
    return out


def _parameter_labels(d: int) -> np.ndarray:
    return np.array([f"u{i}" for i in range(d)] + [f"v{i}" for i in range(d)])


def to_xarray(result):
    """The result as an ``xarray.Dataset``; see :meth:`diagsim.engine.result.Result.to_xarray`."""
    xr = require("xarray", "Result.to_xarray")
    if result.family != "diagonal":
        from ..errors import DiagsimError
        raise DiagsimError(f"Result.to_xarray labels the diagonal network's parameters; this run is of model "
                           f"family {result.family!r} (use Result.records / Result.final)")
    steps = np.asarray(result.steps, dtype=np.int64)
    coords = {"step": ("step", steps), "t": ("step", result.t), "tau": ("step", result.tau),
              "path": ("path", np.asarray(result.paths, dtype=np.int64))}
    data = {}
    for name, values in result.records.items():
        data[variable_name(name)] = (("step", "path"), np.asarray(values), {"record": name})
    for name, values in result.final_observables.items():
        data[f"final_{variable_name(name)}"] = (("path",), np.asarray(values), {"record": name})
    d = int(result.config["problem"]["d"])
    for name, values in result.final.items():
        values = np.asarray(values)
        if values.ndim == 2 and values.shape[1] == 2 * d:
            dims = ("path", "parameter")
        else:
            dims = ("path", *(f"{name}_dim{i}" for i in range(1, values.ndim)))
        data[f"final_{name}"] = (dims, values)
    data["final_w"] = (("path", "coordinate"), result.w)
    data["diverged_step"] = (("path",), np.asarray(result.div_step, dtype=np.int64),
                             {"description": "step at which the path diverged, -1 if it did not"})
    data["diverged_loss"] = (("path",), np.asarray(result.div_loss, dtype=np.float64),
                             {"description": "loss where the path diverged, NaN if it did not"})
    coords["parameter"] = ("parameter", _parameter_labels(d))
    coords["coordinate"] = ("coordinate", np.arange(d, dtype=np.int64))
    config = result.config
    attrs = {k: _attr(v) for k, v in config.items()}
    attrs[KEYS_ATTR] = json.dumps(list(config))
    attrs[JSON_KEYS_ATTR] = json.dumps([k for k, v in config.items() if _attr(v) is not v])
    attrs[INFO_ATTR] = json.dumps(result.info)
    return xr.Dataset(data, coords=coords, attrs=attrs)


def to_dataframe(result, layout: str = "wide"):
    """The records as a ``pandas.DataFrame``; see :meth:`diagsim.engine.result.Result.to_dataframe`."""
    from ..errors import check_choice
    pd = require("pandas", "Result.to_dataframe")
    check_choice("layout", layout, ("wide", "long"))
    n_rec, n_paths = len(result.steps), result.n_paths
    index = {"step": np.repeat(np.asarray(result.steps, dtype=np.int64), n_paths),
             "t": np.repeat(result.t, n_paths), "tau": np.repeat(result.tau, n_paths),
             "path": np.tile(np.asarray(result.paths, dtype=np.int64), n_rec)}
    if layout == "wide":
        cols = dict(index)
        cols.update({name: np.asarray(v, dtype=np.float64).reshape(-1) for name, v in result.records.items()})
        return pd.DataFrame(cols)
    names = list(result.records)
    k = len(names)
    cols = {key: np.tile(v, k) for key, v in index.items()}
    cols["observable"] = np.repeat(np.array(names, dtype=object), n_rec * n_paths)
    cols["value"] = np.concatenate([np.asarray(result.records[nm], dtype=np.float64).reshape(-1) for nm in names]) \
        if names else np.zeros(0)
    return pd.DataFrame(cols)
