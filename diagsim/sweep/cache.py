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

**Claims.** Several sweeps may share one cache (two shells, two batch jobs). Before computing a job, a
sweep creates ``<key>.claim`` with ``O_CREAT | O_EXCL`` (one winner), holding its host name, process id,
start time and a random token; it removes the claim once the job's result or failure is written, and
all its claims when it stops, however it stops (except SIGKILL). While it runs, a daemon thread
refreshes the modification time of its claims every ``refresh`` seconds. Another sweep leaves a claimed
job alone and waits for it, unless the claim is **stale**: its process is dead (same host), or it has
not been refreshed for ``timeout`` seconds (any host). A stale claim is taken over under a short lock
(``.claims.lock``), so two sweeps cannot both take over the same one. A sweep stopped for longer than
``timeout`` (suspended, say) may thus find its job recomputed by another; jobs are deterministic and
writes atomic, so both write the same bytes.
"""
from __future__ import annotations

import datetime
import hashlib
import json
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from .._version import __version__
from ..storage import config_diff, create_exclusive, describe_diff, file_sha256, locked, write_bytes_atomic

KEY_LENGTH = 24
ENTRY_FORMAT = "diagsim-sweep-entry"
FAILURE_FORMAT = "diagsim-sweep-failure"
CLAIM_SUFFIX = ".claim"
TAKEOVER_LOCK = ".claims.lock"
HOST = socket.gethostname()


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


# --------------------------------------------------------------------------- claims
@dataclass(frozen=True)
class Claim:
    """A claim file as read: who holds the job, and when the claim was last refreshed."""

    key: str
    host: str | None
    pid: int | None
    started: str
    token: str | None
    mtime: float

    @property
    def owner(self) -> str:
        """"pid 1234 on host" (or "an unknown process" for a claim still being written)."""
        if self.pid is None:
            return "an unknown process"
        return f"pid {self.pid} on {self.host}"


def _pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host and is not a zombie."""
    if pid <= 0:
        return True          # not a real pid: let the timeout decide
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


class Claims:
    """The claims one sweep holds in a cache folder, refreshed by a daemon thread while it runs.

    Use as a context manager: on entry the refresh thread starts; on exit it stops and every claim still
    held is removed.

    Parameters
    ----------
    root : the cache folder.
    refresh : seconds between two refreshes of the held claims' modification times.
    timeout : a claim not refreshed for this many seconds is stale (taken over by another sweep).
    """

    def __init__(self, root, *, refresh: float = 30.0, timeout: float = 300.0):
        self.root = Path(root)
        self.refresh, self.timeout = float(refresh), float(timeout)
        self.token = uuid.uuid4().hex
        self.started = datetime.datetime.now().isoformat(timespec="seconds")
        self._held: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def path(self, key: str) -> Path:
        return self.root / f"{key}{CLAIM_SUFFIX}"

    @property
    def held(self) -> set[str]:
        with self._lock:
            return set(self._held)

    # ---------------------------------------------------------------- claiming
    def claim(self, key: str) -> Claim | None:
        """Claim ``key``: None if this sweep now holds it (a new claim, or a stale one taken over), else
        the live claim of the sweep that holds it."""
        while True:
            if self._create(key):
                return None
            other = self.read(key)
            if other is None:
                continue                  # released between the two calls: try again
            if not self.is_stale(other):
                return other
            if self._take_over(key):
                return None

    def _create(self, key: str) -> bool:
        doc = {"host": HOST, "pid": os.getpid(), "started": self.started, "token": self.token}
        with self._lock:
            self._held.add(key)          # first, so that an interruption right after cannot orphan it
        if create_exclusive(self.path(key), (json.dumps(doc) + "\n").encode()):
            return True
        with self._lock:
            self._held.discard(key)
        return False

    def _take_over(self, key: str) -> bool:
        with locked(self.root / TAKEOVER_LOCK):
            current = self.read(key)
            if current is not None:
                if not self.is_stale(current):
                    return False
                self.path(key).unlink(missing_ok=True)
            return self._create(key)

    def read(self, key: str) -> Claim | None:
        """The claim on ``key``, or None if there is none."""
        p = self.path(key)
        try:
            mtime = p.stat().st_mtime
            doc = json.loads(p.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            doc = {}                      # being written, or damaged: only its age can tell
        if not isinstance(doc, dict):
            doc = {}
        host, pid = doc.get("host"), doc.get("pid")
        return Claim(key, host if isinstance(host, str) else None, pid if isinstance(pid, int) else None,
                     str(doc.get("started", "")), doc.get("token"), mtime)

    def is_stale(self, claim: Claim) -> bool:
        """Dead owner on this host, or not refreshed for ``timeout`` seconds."""
        if claim.host == HOST and claim.pid is not None and not _pid_alive(claim.pid):
            return True
        return time.time() - claim.mtime > self.timeout

    def release(self, key: str) -> None:
        """Remove this sweep's claim on ``key`` (not one another sweep took over meanwhile)."""
        with self._lock:
            if key not in self._held:
                return
        current = self.read(key)
        if current is not None and current.token == self.token:
            self.path(key).unlink(missing_ok=True)
        with self._lock:
            self._held.discard(key)

    # ---------------------------------------------------------------- lifetime
    def _beat(self) -> None:
        while not self._stop.wait(self.refresh):
            for key in self.held:
                try:
                    os.utime(self.path(key))
                except OSError:
                    pass                  # released meanwhile

    def __enter__(self) -> "Claims":
        self._thread = threading.Thread(target=self._beat, name="diagsim-sweep-claims", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for key in self.held:
            self.release(key)
        if self._thread is not None:
            self._thread.join()
