"""Every malformed input of the corpus (tests/fault_inputs.py): good records read, each bad one a reject
with its reason, read + rejected = total, whole-file failures a message; never an exception."""

import json

import pytest

from dialpref.data import Rejects, read_dialogues
from dialpref.data.formats import SourceError

from fault_inputs import CASES, recoverable_lines


def run_case(case, tmp_path):
    path = case.write(tmp_path)
    rejects_path = tmp_path / f"{case.name}.rejects.jsonl"
    rejects = Rejects(rejects_path, echo=False)
    dialogues, error = [], None
    try:
        dialogues = list(read_dialogues(path, rejects, format=case.format))
    except SourceError as err:
        error = str(err)
    rejects.close()
    rows = [json.loads(l) for l in rejects_path.read_text().splitlines()] if rejects_path.exists() else []
    return path, dialogues, rows, error


@pytest.mark.parametrize("case", [c for c in CASES if not c.big], ids=lambda c: c.name)
def test_malformed_input(case, tmp_path):
    path, dialogues, rows, error = run_case(case, tmp_path)
    if case.partial:  # every line before the damage is read or rejected; the damage is the last reject
        assert error is None, error
        assert rows and case.message in rows[-1]["reason"], rows[-1:]
        assert len(dialogues) + len(rows) - 1 >= recoverable_lines(path.read_bytes()) - 1
        return
    if case.good is None:
        assert error is not None and case.message in error, error
        assert "\n" not in error and len(error) < 400
        if case.total is not None:  # the broken records reached the rejects file
            assert len(rows) == case.total
        return
    assert error is None, error
    assert len(dialogues) == case.good, [r["reason"] for r in rows]
    assert len(dialogues) + len(rows) == case.total, [r["reason"] for r in rows]
    if case.message:
        assert any(case.message in r["reason"] for r in rows), [r["reason"] for r in rows]
    assert all(r["line"] is not None or r["id"] for r in rows), "every reject says where it was"


def test_id_zero_is_kept_and_a_missing_id_named_by_position(tmp_path):
    case = next(c for c in CASES if c.name == "id_zero")
    _, dialogues, _, _ = run_case(case, tmp_path)
    assert [d.id for d in dialogues] == ["0", "zero:2"]


def test_meld_rows_after_an_open_quote_are_read_again(tmp_path):
    case = next(c for c in CASES if c.name == "meld_unclosed_quote")
    _, dialogues, rows, _ = run_case(case, tmp_path)
    assert [[t.text for t in d.turns] for d in dialogues] == [["hi"], ["then", "more"], ["end"]]
    assert rows[0]["line"] == 3  # the header is line 1, the open quote is on line 3


@pytest.mark.parametrize("case", [c for c in CASES if c.big], ids=lambda c: c.name)
def test_big_malformed_input_in_bounded_memory(case, tmp_path):
    """Run in a child process so its peak memory is its own: a 200 MB utterance is skipped, never held."""
    import subprocess
    import sys

    path = case.write(tmp_path)
    code = ("import sys, json; from dialpref.data import Rejects, read_dialogues; r = Rejects(echo=False); "
            "n = sum(1 for _ in read_dialogues(sys.argv[1], r)); "
            "peak = next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM')); "
            "print(json.dumps([n, r.count, r.examples[0]['reason'], peak / 1024]))")
    run = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    read, rejected, reason, peak_mb = json.loads(run.stdout)
    assert (read, read + rejected) == (case.good, case.total) and case.message in reason
    # VmHWM starts afresh at exec: this is the reader's own peak (a good file costs about as much)
    assert peak_mb < 150, f"peak {peak_mb:.0f} MB"
