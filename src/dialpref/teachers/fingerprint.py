"""A model file's identity by its content: SHA-256, computed once and remembered.

The cache keys answers by what produced them. A GGUF whose weights change but
whose name and size stay the same must not be served the old answers, so the
key holds the file's hash. Hashing a 1 GB file takes seconds; the result is
remembered by (path, size, mtime, inode) in a small JSON file, so only a
changed file is hashed again.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path

_LOCK = threading.Lock()
_BLOCK = 1 << 22


def memo_path() -> Path:
    """Where remembered hashes live: $DIALPREF_HOME, else ~/.cache/dialpref."""
    home = os.environ.get("DIALPREF_HOME") or Path.home() / ".cache" / "dialpref"
    return Path(home) / "file_hashes.json"


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of `path`'s bytes, from the memo when the file has not changed since."""
    path = Path(path).resolve()
    info = path.stat()
    stamp = f"{info.st_size}:{info.st_mtime_ns}:{info.st_ino}"
    memo = memo_path()
    with _LOCK:
        known = _read(memo)
        entry = known.get(str(path))
        if entry and entry.get("stamp") == stamp:
            return entry["sha256"]
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(_BLOCK), b""):
            digest.update(block)
    value = digest.hexdigest()
    with _LOCK:
        known = _read(memo)
        known[str(path)] = {"stamp": stamp, "sha256": value}
        _write(memo, known)
    return value


def _read(memo: Path) -> dict:
    try:
        data = json.loads(memo.read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}  # a missing or damaged memo costs one hash, nothing else


def _write(memo: Path, data: dict) -> None:
    try:
        memo.parent.mkdir(parents=True, exist_ok=True)
        tmp = memo.with_name(f"{memo.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
        tmp.replace(memo)
    except OSError:
        pass  # a read-only home: the hash is computed again next time
