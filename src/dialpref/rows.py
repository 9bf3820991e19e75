"""Rows (labelling scores, synthesis records, predictions) to and from JSONL or Parquet, in shapes
`datasets.load_dataset` reads as they are. One writer and two readers with opposite rules, named for them:
`read_rows_strict` (a damaged line is an error naming file and line: the file is an input) and
`read_rows_lenient` (a damaged line is skipped: the file is a run's own append log, whose last line a kill
may have cut; that record is made again from the cache).

Parquet needs pyarrow (`pip install 'dialpref[parquet]'`); JSONL (also gzipped, `.jsonl.gz`) needs nothing.
"""

from __future__ import annotations

import gzip
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


def read_rows_strict(path: str | Path) -> list[dict[str, Any]]:
    """Every row; a line that is not JSON raises ValueError with the file and line number."""
    path = Path(path)
    if path.suffix == ".parquet":
        return _pyarrow().parquet.read_table(path).to_pylist()
    rows = []
    with (gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else path.open(encoding="utf-8")) as handle:
        for number, line in enumerate(handle, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except ValueError as err:
                    raise ValueError(f"{path}:{number}: not a JSON row ({err})") from None
    return rows


def read_rows_lenient(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a JSONL append log that parse; none if the file does not exist yet."""
    path = Path(path)
    if not path.exists():
        return []
    rows = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            line = line.strip()
            if line:
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    continue  # a line cut by a kill; that record runs again (from the cache)
    return rows

