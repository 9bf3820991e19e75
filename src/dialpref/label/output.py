"""Score rows to and from JSONL or Parquet, in shapes `datasets.load_dataset` reads as they are.

Parquet needs pyarrow (`pip install 'dialpref[parquet]'`); JSONL needs nothing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

from dialpref.files import atomic_write


def _pyarrow():
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError as err:
        raise RuntimeError("writing Parquet needs pyarrow: pip install 'dialpref[parquet]' (or write .jsonl)") \
            from err
    return pyarrow


def write_rows(rows: Iterable[dict[str, Any]], path: Path) -> Path:
    """Write all rows at once, atomically: readers see the previous file or this one whole."""
    rows = list(rows)
    if path.suffix == ".parquet":
        pa = _pyarrow()
        with atomic_write(path, "wb") as handle:
            pa.parquet.write_table(pa.Table.from_pylist(rows), handle)
        return path
    with atomic_write(path) as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    path = Path(path)
    if path.suffix == ".parquet":
        return _pyarrow().parquet.read_table(path).to_pylist()
    rows = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except ValueError as err:
                    raise ValueError(f"{path}:{number}: not a JSON row ({err})") from None
    return rows
