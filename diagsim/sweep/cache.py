"""The on-disk result cache of sweeps.

A job's result lives at ``<cache_dir>/<key><suffix>`` where ``key`` is the first 24 hex digits of the
SHA-256 of the canonical JSON of ``{"config": config, "diagsim": __version__}`` (keys sorted, no
whitespace). It is a pure function of the configuration and the package version: the same job computed
twice, on any machine or backend, lands at the same path, and a new diagsim version never reads an older
version's results.

Next to it, ``<key>.json`` records the configuration (written first), and ``<key>.error.json`` records
a deterministic failure (a :class:`~diagsim.errors.DiagsimError` raised by the job, e.g. every path
diverged), so that re-running a sweep does not recompute it either. Results are written to a temporary
file and renamed into place (atomic on POSIX), so an interrupted sweep never leaves a half-written
result: a file that exists is complete.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from .._version import __version__
from ..storage import write_bytes_atomic


KEY_LENGTH = 24


def canonical_json(obj) -> str:
    """Deterministic JSON: sorted keys, no whitespace, floats as ``repr`` (exact round trip)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=True)


def job_key(config: dict, version: str = __version__) -> str:
    """The cache key of a job: hex SHA-256 of (config, diagsim version), truncated to 24 digits."""
    doc = canonical_json({"config": config, "diagsim": version})
    return hashlib.sha256(doc.encode("ascii")).hexdigest()[:KEY_LENGTH]


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically, creating its folder if needed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(path, data)


class Cache:
    """Paths and I/O of one cache folder.

    Parameters
    ----------
    root : the folder (created on first write).
    suffix : the result file's suffix, set by the job kind (".npz").
    """

    def __init__(self, root, suffix: str = ".npz"):
        self.root = Path(root)
        self.suffix = suffix

    def result_path(self, key: str) -> Path:
        return self.root / f"{key}{self.suffix}"

    def config_path(self, key: str) -> Path:
        return self.root / f"{key}.json"

    def error_path(self, key: str) -> Path:
        return self.root / f"{key}.error.json"

    def status(self, key: str) -> str:
        """"ok" (result present), "failed" (a recorded deterministic failure) or "missing"."""
        if self.result_path(key).exists():
            return "ok"
        if self.error_path(key).exists():
            return "failed"
        return "missing"

    def write_config(self, key: str, config: dict) -> None:
        p = self.config_path(key)
        if not p.exists():
            atomic_write_bytes(p, (json.dumps(config, sort_keys=True, indent=1) + "\n").encode())

    def write_result(self, key: str, config: dict, data: bytes) -> Path:
        self.write_config(key, config)
        atomic_write_bytes(self.result_path(key), data)
        try:
            self.error_path(key).unlink()
        except FileNotFoundError:
            pass
        return self.result_path(key)

    def write_error(self, key: str, config: dict, message: str, kind: str) -> None:
        self.write_config(key, config)
        doc = {"error": kind, "message": message}
        atomic_write_bytes(self.error_path(key), (json.dumps(doc) + "\n").encode())

    def read_error(self, key: str) -> dict:
        with open(self.error_path(key)) as f:
            return json.load(f)
