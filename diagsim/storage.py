"""Stored work: how diagsim writes, reads and checks the files it keeps (results, checkpoints, cache
entries, tables, figures).

One home for four rules that every writer and reader follows:

- **Atomic writes.** A file is written to a temporary file in the same folder, flushed to disk and renamed
  over its target, so a reader sees the old file or the new one, never a partial one
  (:func:`write_bytes_atomic`, :func:`write_text_atomic`, :func:`write_npz_atomic`). The file gets the
  permissions an ordinary ``open(path, "w")`` would give (0666 minus the umask), not the 0600 of a
  temporary file.
- **Clear errors on reading.** :func:`load_npz` reads an ``.npz`` of plain arrays and says in one line what
  is wrong with a missing, truncated or foreign file, or one that holds Python objects (diagsim never
  unpickles).
- **Checks before work.** :func:`check_output_file` and :func:`check_output_dir` make sure an output path
  can be written *before* a run starts, so a result is never lost to a bad path after the work is done.
- **Identity before reuse.** :func:`config_diff` lists, in words, how the configuration that stored work
  was made from differs from the one asked for; callers refuse to reuse the work unless it is empty.

Two primitives for processes that share a folder: :func:`create_exclusive` creates a file only if it
does not exist yet (one winner among racing processes), and :func:`locked` holds an advisory lock for a
short critical section.
"""
from __future__ import annotations

import hashlib
import io
import json
import math
import os
import tempfile
import threading
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None

import numpy as np

from .errors import CorruptFileError, DiagsimError

_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process's umask (read from /proc where possible, so that no other thread sees it change)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def file_mode() -> int:
    """The mode of a newly created regular file: 0666 minus the umask."""
    return 0o666 & ~current_umask()


# --------------------------------------------------------------------------- atomic writes
def _write_atomic(path, write: Callable, *, binary: bool = True) -> Path:
    """Call ``write(fileobj)`` on a temporary file beside ``path``, then rename it over ``path``."""
    path = Path(path)
    if not path.parent.is_dir():
        raise DiagsimError(f"cannot write {str(path)!r}: the folder {str(path.parent)!r} does not exist")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        os.fchmod(fd, file_mode())
        with os.fdopen(fd, "wb" if binary else "w") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def write_bytes_atomic(path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (see the module doc)."""
    return _write_atomic(path, lambda f: f.write(data))


def write_text_atomic(path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (see the module doc)."""
    return _write_atomic(path, lambda f: f.write(text), binary=False)


def _json_default(o):
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (np.floating, np.integer, np.bool_)):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


def to_json(obj, **kw) -> str:
    """``json.dumps`` that also takes NumPy scalars and arrays and paths."""
    return json.dumps(obj, default=_json_default, **kw)


def write_npz_atomic(path, arrays: dict, meta: dict | None = None) -> Path:
    """Write ``arrays`` (and ``meta``, embedded as the JSON string array ``__meta__``) as an ``.npz``,
    atomically."""
    extra = {} if meta is None else {"__meta__": np.array(to_json(meta))}
    return _write_atomic(path, lambda f: np.savez(f, **extra, **arrays))


def save_figure(fig, path, *, dpi: int | None = None) -> Path:
    """Save a matplotlib figure atomically, in the format of the file's suffix, with reproducible
    metadata (no creation date in a PDF, no software version in a PNG), so that the same figure gives the
    same bytes. The folder is created if needed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = path.suffix.lstrip(".").lower() or "png"
    meta = {"pdf": {"CreationDate": None}, "png": {"Software": None}}.get(fmt)
    return _write_atomic(path, lambda f: fig.savefig(f, format=fmt, dpi=dpi, metadata=meta))


def file_sha256(path) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# --------------------------------------------------------------------------- reading
def load_npz(path, what: str = "file") -> dict[str, np.ndarray]:
    """All arrays of the ``.npz`` at ``path``, or a one-line :class:`DiagsimError` saying why not.

    ``what`` names the file in the message ("data file", "checkpoint", ...). Arrays of Python objects are
    refused (reading them would mean unpickling, which can run arbitrary code)."""
    path = Path(path)
    label = f"{what} {str(path)!r}"
    if not path.exists():
        raise DiagsimError(f"{label} does not exist")
    if path.is_dir():
        raise DiagsimError(f"{label} is a folder, not an .npz file")
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
    except OSError as exc:
        raise DiagsimError(f"{label} cannot be read ({exc.strerror or exc})") from None
    if not head:
        raise CorruptFileError(f"{label} is empty")
    if head != b"PK\x03\x04":
        raise CorruptFileError(f"{label} is not an .npz file (NumPy's zip format)")
    out = {}
    try:
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as f:
            for k in f.files:
                out[k] = f[k]
    except ValueError as exc:
        if "pickle" in str(exc):
            raise DiagsimError(f"{label} holds Python objects (an array of dtype object); diagsim reads only "
                               "arrays of numbers and strings") from None
        raise CorruptFileError(f"{label} is corrupt ({exc})") from None
    except (zipfile.BadZipFile, EOFError, OSError, KeyError) as exc:
        raise CorruptFileError(f"{label} is truncated or corrupt ({type(exc).__name__}: {exc})") from None
    return out


def read_npz(path, fmt: str, what: str | None = None) -> tuple[dict, dict]:
    """(arrays, meta) of a file written by :func:`write_npz_atomic`, checking its format tag ``fmt``."""
    what = what or fmt.replace("diagsim-", "")
    arrays = load_npz(path, what)
    label = f"{what} {str(path)!r}"
    if "__meta__" not in arrays:
        raise CorruptFileError(f"{label} is not a diagsim {fmt} file (it has no diagsim metadata)")
    try:
        meta = json.loads(str(arrays.pop("__meta__")))
    except json.JSONDecodeError:
        raise CorruptFileError(f"{label} is corrupt (its metadata is not valid JSON)") from None
    if not isinstance(meta, dict) or meta.get("format") != fmt:
        found = meta.get("format") if isinstance(meta, dict) else None
        raise CorruptFileError(f"{label} is a {found!r} file, expected {fmt!r}")
    return arrays, meta


def npz_bytes(arrays: dict) -> bytes:
    """The bytes of an uncompressed ``.npz`` of ``arrays`` (deterministic: fixed timestamps)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for k, v in arrays.items():
            a = np.asarray(v)
            if a.dtype.hasobject:
                raise DiagsimError(f"array {k!r} has dtype object; only numeric or string arrays can be stored")
            info = zipfile.ZipInfo(f"{k}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o600 << 16
            with zf.open(info, "w", force_zip64=True) as f:
                np.lib.format.write_array(f, a, allow_pickle=False)
    return buf.getvalue()


# --------------------------------------------------------------------------- checks before work
def _probe_writable(folder: Path, label: str) -> None:
    """Create and delete a temporary file in ``folder``: the only test that also holds for root, read-only
    file systems and network mounts."""
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".diagsim-probe-")
    except OSError as exc:
        raise DiagsimError(f"{label}: cannot write in the folder {str(folder)!r} "
                           f"({exc.strerror or exc})") from None
    os.close(fd)
    os.unlink(tmp)


def check_output_file(path, what: str = "output file") -> Path:
    """Check, before any work, that ``path`` can be written: its folder exists and is writable, and the
    path is not a folder. Returns ``Path(path)``."""
    path = Path(path)
    label = f"{what} {str(path)!r}"
    if path.is_dir():
        raise DiagsimError(f"{label} is a folder; give a file name")
    parent = path.parent
    if not parent.exists():
        raise DiagsimError(f"{label}: the folder {str(parent)!r} does not exist")
    if not parent.is_dir():
        raise DiagsimError(f"{label}: {str(parent)!r} is a file, not a folder")
    _probe_writable(parent, label)
    return path


def check_output_dir(path, what: str = "output folder", *, create: bool = True) -> Path:
    """Check, before any work, that ``path`` is (or, with ``create``, can be made) a writable folder."""
    path = Path(path)
    label = f"{what} {str(path)!r}"
    if path.exists() and not path.is_dir():
        raise DiagsimError(f"{label} is a file, not a folder")
    if not path.exists():
        if not create:
            raise DiagsimError(f"{label} does not exist")
        for up in path.parents:  # the first existing ancestor must be a folder
            if up.exists():
                if not up.is_dir():
                    raise DiagsimError(f"{label}: {str(up)!r} is a file, not a folder")
                break
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DiagsimError(f"{label} cannot be created ({exc.strerror or exc})") from None
    _probe_writable(path, label)
    return path


# --------------------------------------------------------------------------- identity of stored work
def _fmt(v) -> str:
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    s = json.dumps(v, default=_json_default) if not isinstance(v, str) else repr(v)
    return s if len(s) <= 60 else s[:57] + "..."


def config_diff(stored, wanted, *, ignore=(), prefix: str = "") -> list[str]:
    """How ``wanted`` differs from ``stored`` (JSON-like values), one phrase per difference:
    ``"optimizer.lr: 0.05 here, 0.1 stored"``. Keys named in ``ignore`` (dotted paths or bare names) are
    skipped. An empty list means the two describe the same work."""
    out: list[str] = []
    if isinstance(stored, dict) and isinstance(wanted, dict):
        for k in list(wanted) + [k for k in stored if k not in wanted]:
            path = f"{prefix}{k}"
            if k in ignore or path in ignore:
                continue
            if k not in stored:
                out.append(f"{path}: {_fmt(wanted[k])} here, absent in the stored work")
            elif k not in wanted:
                out.append(f"{path}: absent here, {_fmt(stored[k])} stored")
            else:
                out += config_diff(stored[k], wanted[k], ignore=ignore, prefix=path + ".")
        return out
    if isinstance(stored, (list, tuple)) and isinstance(wanted, (list, tuple)) and len(stored) == len(wanted):
        for i, (a, b) in enumerate(zip(stored, wanted)):
            out += config_diff(a, b, ignore=ignore, prefix=f"{prefix}{i}.")
        return out
    if _same(stored, wanted):
        return out
    return [f"{prefix.rstrip('.') or 'value'}: {_fmt(wanted)} here, {_fmt(stored)} stored"]


def _same(a, b) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b or (isinstance(a, bool) and isinstance(b, bool) and a == b)
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        fa, fb = float(a), float(b)
        return fa == fb or (math.isnan(fa) and math.isnan(fb))
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def describe_diff(diffs: list[str], limit: int = 4) -> str:
    """The first ``limit`` differences joined for a one-line message."""
    more = f" (and {len(diffs) - limit} more)" if len(diffs) > limit else ""
    return "; ".join(diffs[:limit]) + more


# --------------------------------------------------------------------------- shared folders
def create_exclusive(path, data: bytes) -> bool:
    """Create ``path`` holding ``data`` if no file of that name exists (``O_CREAT | O_EXCL``, atomic even
    between processes on one file system); False, changing nothing, if one does. The file gets the mode
    0666 minus the umask."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except FileExistsError:
        return False
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        path.unlink(missing_ok=True)
        raise
    os.close(fd)
    return True


@contextmanager
def locked(path) -> Iterator[None]:
    """Hold an exclusive advisory lock (``flock``) on the file ``path`` for the ``with`` block.

    The file is created if needed and removed at the end, while the lock is still held; a waiter that
    then gets the lock on the removed file sees that ``path`` no longer names it and tries again, so
    exactly one process holds the lock at a time. A process that dies releases its lock. Where the file
    system refuses locks, the block runs unlocked."""
    path = Path(path)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:          # no lock support (some network file systems): run unlocked
            break
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        yield
    finally:
        try:
            path.unlink(missing_ok=True)
        finally:
            os.close(fd)
