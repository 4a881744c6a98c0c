"""The on-disk result cache of sweeps: entries, their manifests, and the claims of running sweeps.

**Keys.** A job's key is the first 24 hex digits of the SHA-256 of the canonical JSON of
``{"config": config, "diagsim": __version__}`` (keys sorted, no whitespace). It is a pure function of the
configuration and the package version: the same job computed twice, on any machine or backend, lands at
the same path, and a new diagsim version never reads an older version's results.

**Entries.** A computed job is two files, written in this order, each atomically (a temporary file
renamed into place, see :mod:`diagsim.storage`):

- ``<key><suffix>``, the result (``.npz`` for every built-in job kind);
- ``<key>.json``, its manifest: ``format`` (``"diagsim-sweep-entry"``), ``key``, ``diagsim`` (the
  version), ``config`` (the canonical job configuration) and ``result`` (``file``, ``size`` in bytes,
  ``sha256``).

A deterministic failure (a :class:`~diagsim.errors.DiagsimError` raised by the job, e.g. every path
diverged) is one file, ``<key>.error.json``: ``format`` (``"diagsim-sweep-failure"``), ``key``,
``diagsim``, ``config``, ``error`` (the exception's type) and ``message``, so that re-running a sweep
does not recompute it either. Writing a result removes a failure record of the same key and vice versa.

**Integrity.** Nothing is trusted by its file name. :meth:`Cache.check` calls an entry ``"ok"`` only if
its manifest and result exist, the manifest names this key, this diagsim version and a configuration
that hashes to this key (and equals the configuration asked for), and the result file has the size and
SHA-256 the manifest records; a failure record must likewise name its key, version and a configuration
that hashes to the key. Anything else is ``"corrupt"``, with a one-line reason: a result without a
manifest (a writer killed between the two writes), a manifest without its result, files copied from
another entry, a truncated or edited result, an unparsable manifest or failure record, an entry in an
older layout. :func:`~diagsim.sweep.runner.run_sweep` recomputes corrupt entries;
:func:`~diagsim.sweep.table.collect` reports them and never shows their values.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from .._version import __version__
from ..storage import config_diff, describe_diff, file_sha256, write_bytes_atomic

KEY_LENGTH = 24
ENTRY_FORMAT = "diagsim-sweep-entry"
FAILURE_FORMAT = "diagsim-sweep-failure"


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


def _json_bytes(doc: dict) -> bytes:
    return (json.dumps(doc, sort_keys=True, indent=1, allow_nan=True) + "\n").encode()


@dataclass(frozen=True)
class EntryState:
    """What the cache holds for one key.

    Attributes
    ----------
    status : "ok" (a verified result), "failed" (a verified failure record), "missing" or "corrupt".
    reason : for "corrupt", what is wrong, in a few words ("its result file's SHA-256 does not match its
        manifest"); "" otherwise.
    error : for "failed", the failure record (``error``, ``message``, ...); None otherwise.
    """

    status: str
    reason: str = ""
    error: dict | None = None


class Cache:
    """Paths, integrity checks and I/O of one cache folder.

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

    def manifest_path(self, key: str) -> Path:
        return self.root / f"{key}.json"

    def error_path(self, key: str) -> Path:
        return self.root / f"{key}.error.json"

    # ---------------------------------------------------------------- reading
    def check(self, key: str, config: dict | None = None) -> EntryState:
        """The verified state of entry ``key`` (see the module docstring); ``config``, the canonical
        configuration the caller expects, only sharpens the reason when the stored one differs."""
        result, manifest = self.result_path(key), self.manifest_path(key)
        if result.exists() or manifest.exists():
            return self._check_result(key, config)
        if self.error_path(key).exists():
            doc, reason = self._read_record(key, self.error_path(key), FAILURE_FORMAT, "failure record",
                                            config)
            return EntryState("corrupt", reason) if reason else EntryState("failed", error=doc)
        return EntryState("missing")

    def status(self, key: str, config: dict | None = None) -> str:
        """"ok", "failed", "missing" or "corrupt" (see :meth:`check`)."""
        return self.check(key, config).status

    def _check_result(self, key: str, config: dict | None) -> EntryState:
        result, manifest = self.result_path(key), self.manifest_path(key)
        if not manifest.exists():
            return EntryState("corrupt", f"its result file {result.name} has no manifest {manifest.name} "
                                         "(its writer stopped between the two writes)")
        doc, reason = self._read_record(key, manifest, ENTRY_FORMAT, "manifest", config)
        if reason:
            return EntryState("corrupt", reason)
        rec = doc.get("result")
        if not isinstance(rec, dict) or not isinstance(rec.get("size"), int) or not rec.get("sha256"):
            return EntryState("corrupt", f"its manifest {manifest.name} does not record the result's size "
                                         "and SHA-256")
        try:
            size = result.stat().st_size
        except FileNotFoundError:
            return EntryState("corrupt", f"its result file {result.name} is missing (the manifest is there)")
        if size != rec["size"]:
            return EntryState("corrupt", f"its result file {result.name} has {size} bytes, its manifest says "
                                         f"{rec['size']} (truncated or replaced)")
        if file_sha256(result) != rec["sha256"]:
            return EntryState("corrupt", f"its result file {result.name}: SHA-256 does not match its "
                                         "manifest (replaced or damaged)")
        return EntryState("ok")

    def _read_record(self, key: str, path: Path, fmt: str, what: str,
                     config: dict | None) -> tuple[dict, str]:
        """(document, "") for a valid manifest or failure record of ``key``, else ({}, the reason)."""
        label = f"its {what} {path.name}"
        try:
            doc = json.loads(path.read_bytes())
        except (OSError, ValueError) as exc:
            why = exc.strerror if isinstance(exc, OSError) else "not valid JSON"
            return {}, f"{label} cannot be read ({why})"
        if not isinstance(doc, dict) or doc.get("format") != fmt:
            return {}, (f"{label} is in an older format (no key, configuration or checksum) or is not a "
                        "diagsim sweep record")
        if doc.get("key") != key:
            return {}, f"{label} belongs to entry {doc.get('key')} (copied or renamed)"
        if doc.get("diagsim") != __version__:
            return {}, f"{label} was written by diagsim {doc.get('diagsim')}, this is {__version__}"
        stored = doc.get("config")
        try:
            same = job_key(stored) == key
        except (TypeError, ValueError):
            same = False
        if not same or (config is not None and canonical_json(stored) != canonical_json(config)):
            diffs = config_diff(stored, config) if config is not None else []
            detail = f": {describe_diff(diffs, 2)}" if diffs else ""
            return {}, f"{label} holds a configuration that is not this job's{detail}"
        return doc, ""

    def read_error(self, key: str) -> dict:
        """The failure record of ``key`` (unverified; see :meth:`check`)."""
        with open(self.error_path(key)) as f:
            return json.load(f)

    # ---------------------------------------------------------------- writing
    def write_result(self, key: str, config: dict, data: bytes) -> Path:
        """Store a result: the result file, then its manifest, then drop a failure record of ``key``."""
        atomic_write_bytes(self.result_path(key), data)
        doc = {"format": ENTRY_FORMAT, "key": key, "diagsim": __version__, "config": config,
               "result": {"file": self.result_path(key).name, "size": len(data),
                          "sha256": hashlib.sha256(data).hexdigest()}}
        atomic_write_bytes(self.manifest_path(key), _json_bytes(doc))
        self.error_path(key).unlink(missing_ok=True)
        return self.result_path(key)

    def write_error(self, key: str, config: dict, message: str, kind: str) -> None:
        """Store a deterministic failure, then drop a result (and manifest) of ``key``."""
        doc = {"format": FAILURE_FORMAT, "key": key, "diagsim": __version__, "config": config,
               "error": kind, "message": message}
        atomic_write_bytes(self.error_path(key), _json_bytes(doc))
        self.manifest_path(key).unlink(missing_ok=True)
        self.result_path(key).unlink(missing_ok=True)
