"""A user's own CSV and task spec through every stage from the command line, no converter and no Python:
inspect (detection names the columns and suggests a --map), task init, label, student train, finetune
(from the student and from an encoder alone), predict, calibrate."""

import csv
import json
import random
import subprocess
import sys

import pytest

EMOTIONS = {"JOY": "I am so happy about this!", "SADNESS": "That makes me really sad.",
            "ANGER": "This is outrageous, I'm furious!", "FEAR": "I'm scared of what comes next.",
            "SURPRISE": "Wow, I did not expect that!", "DISGUST": "Ugh, that's gross.", "NEUTRAL": "We meet at noon."}
MAP = """dialogue: [Season, Episode, Scene]
order: Utterance_ID
speaker: Speaker
text: Utterance
labels: {emotion: Emotion}
parse: {Speaker: list_first}
roles: {default: user}
"""


def write_corpus(folder):
    """A TV-series emotion export: one row per utterance, dialogues keyed by three columns, rows shuffled,
    speakers as list literals, labels in capitals, one empty utterance."""
    rng = random.Random(0)
    rows = []
    for scene in range(12):
        for utt in range(5):
            emotion = rng.choice(sorted(EMOTIONS))
            text = "" if (scene, utt) == (3, 2) else f"{EMOTIONS[emotion]} ({scene}.{utt})"
            rows.append({"Season": 1 + scene // 6, "Episode": 1 + scene % 3, "Scene": scene, "Utterance_ID": utt,
                         "Speaker": str([rng.choice(["Ross Geller", "Rachel Green"])]), "Utterance": text,
                         "Emotion": emotion})
    rng.shuffle(rows)
    with (folder / "tv.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    (folder / "tv_map.yaml").write_text(MAP)


def dialpref(folder, *args, ok=True):
    run = subprocess.run([sys.executable, "-m", "dialpref.cli", *args], cwd=folder, capture_output=True, text=True,
                         timeout=600)
    assert "Traceback" not in run.stderr, run.stderr[-2000:]
    if ok:
        assert run.returncode == 0, run.stderr[-2000:]
    return run


def last_json(run):
    """The JSON summary a command printed last (to stdout or, with its progress, to stderr)."""
    for text in (run.stdout, run.stderr):
        lines = text.splitlines()
        if "{" in lines:
            start = len(lines) - 1 - lines[::-1].index("{")
            return json.loads("\n".join(lines[start:]))
    raise AssertionError(f"no JSON summary in {run.stdout[-500:]!r} {run.stderr[-500:]!r}")


def test_own_csv_and_task_through_every_stage(tmp_path):
    pytest.importorskip("llama_cpp")
    pytest.importorskip("torch")
    write_corpus(tmp_path)
    unknown = dialpref(tmp_path, "data", "inspect", "tv.csv", ok=False)
    assert unknown.returncode == 2 and "Season, Episode, Scene" in unknown.stderr and "--map" in unknown.stderr
    assert "speaker: Speaker" in unknown.stderr and "text: Utterance" in unknown.stderr

    shown = dialpref(tmp_path, "data", "inspect", "tv.csv", "--map", "tv_map.yaml").stdout
    assert "12" in shown and "Ross Geller" in shown and "['Ross" not in shown

    dialpref(tmp_path, "task", "init", "tv.csv", "--map", "tv_map.yaml", "--label", "emotion", "--name", "tv_emotions",
             "--output", "tv_emotions.yaml")
    spec = (tmp_path / "tv_emotions.yaml").read_text()
    assert "gold_map" in spec and "JOY: joy" in spec and spec.count("TODO: ") == 9  # the header names them too

    run = dialpref(tmp_path, "label", "tv.csv", "--map", "tv_map.yaml", "--task", "tv_emotions.yaml",
                   "--dialogues", "12", "--output", "runs/scores.jsonl", "--cache", "runs/c.sqlite")
    labelled = last_json(run)
    assert labelled["task"] == "tv_emotions" and labelled["utterances"] == 59 and "gold" in labelled
    # not on a terminal: progress comes as lines, a tenth of the way each
    assert "labelling tv_emotions with gemma3-270m: 59/59" in run.stderr and run.stderr.count(": ") >= 5
    dropped = [json.loads(l) for l in (tmp_path / "runs" / "scores.input-rejects.jsonl").read_text().splitlines()]
    assert [r["reason"].split(" (")[0] for r in dropped] == ["empty turn dropped"]  # the turn, not its dialogue

    dialpref(tmp_path, "student", "train", "runs/scores.jsonl", "--source", "tv.csv", "--map", "tv_map.yaml",
             "--steps", "3", "--output", "runs/student")
    dialpref(tmp_path, "student", "finetune", "runs/student", "tv.csv", "--map", "tv_map.yaml", "--steps", "3",
             "--output", "runs/ft")
    none = last_json(dialpref(tmp_path, "student", "finetune", "default", "tv.csv", "--map", "tv_map.yaml",
                              "--from-encoder", "--task", "tv_emotions.yaml", "--steps", "0",
                              "--output", "runs/gold-only"))
    assert none["steps"] == 0  # 0 means zero

    predicted = last_json(dialpref(tmp_path, "predict", "runs/ft", "tv.csv", "--map", "tv_map.yaml",
                                   "--output", "runs/pred.jsonl"))
    assert predicted["utterances"] == 59 and "accuracy" in predicted
    rows = [json.loads(l) for l in (tmp_path / "runs" / "pred.jsonl").read_text().splitlines()]
    assert {r["gold"] for r in rows} <= {"joy", "sadness", "anger", "fear", "surprise", "disgust", "neutral"}

    calibrated = last_json(dialpref(tmp_path, "calibrate", "runs/scores.jsonl"))
    assert calibrated["rows"] == 59 and "ece" in calibrated["before"]
    # the reports of a custom task: reliability diagrams of the labelling run and of calibrate
    assert (tmp_path / "runs" / "scores.reliability.png").stat().st_size > 1000
    assert (tmp_path / calibrated["reliability_png"]).stat().st_size > 1000

    # the custom task served: exported, then answered over a real socket with the spec's own classes
    pytest.importorskip("fastapi")
    from serve_helpers import serving

    from dialpref.serve import Client

    dialpref(tmp_path, "student", "export", "runs/ft")
    with serving(tmp_path / "runs" / "ft") as server, Client(server.url) as client:
        assert client.model()["task"] == "tv_emotions"
        answer = client.classify([{"text": "Wow, I did not expect that!", "speaker": "Ross Geller",
                                   "context": [{"speaker": "Rachel Green", "text": "We meet at noon."}]}])[0]
    assert answer["label"] in {"joy", "sadness", "anger", "fear", "surprise", "disgust", "neutral"}
    assert set(answer["scores"]) == {"joy", "sadness", "anger", "fear", "surprise", "disgust", "neutral"}


def test_strict_mode_on_the_command_line_rejects_the_dialogue_of_an_empty_turn(tmp_path):
    write_corpus(tmp_path)
    kept = dialpref(tmp_path, "data", "convert", "tv.csv", "kept.jsonl", "--map", "tv_map.yaml")
    strict = dialpref(tmp_path, "data", "convert", "tv.csv", "strict.jsonl", "--map", "tv_map.yaml", "--strict")
    assert "wrote 12 dialogues" in " ".join(kept.stderr.split())  # the empty turn dropped, its dialogue kept
    assert "wrote 11 dialogues" in " ".join(strict.stderr.split())  # the whole dialogue rejected, as asked
    reasons = [json.loads(line)["reason"] for line in (tmp_path / "strict.rejects.jsonl").read_text().splitlines()]
    assert len(reasons) == 1 and "empty" in reasons[0]


def test_split_rejects_count_only_that_split(tmp_path):
    from dialpref.data import Rejects, read_dialogues

    from fault_inputs import convlab

    bad = {**convlab(2), "data_split": "train", "turns": "not a list"}
    records = [{**convlab(1), "data_split": "test"}, bad, {**convlab(3), "data_split": "test"}]
    path = tmp_path / "dialogues.json"
    path.write_text(json.dumps(records))
    rejects = Rejects(echo=False)
    assert len(list(read_dialogues(path, rejects, split="test"))) == 2 and rejects.count == 0
    rejects = Rejects(echo=False)
    assert len(list(read_dialogues(path, rejects, split="train"))) == 0 and rejects.count == 1


def test_nested_jsonl_and_parquet_through_a_map(tmp_path):
    from dialpref.data import Rejects, read_dialogues

    nested = tmp_path / "support.jsonl"
    nested.write_text("\n".join(json.dumps(r) for r in [
        {"conversation_id": "c1", "messages": [{"author": "customer", "body": "my card is lost", "intent": "lost"},
                                               {"author": "agent", "body": "I can block it"}]},
        {"conversation_id": "c2", "messages": "not a list"}]) + "\n")
    (tmp_path / "nested.yaml").write_text("dialogue: conversation_id\nturns: messages\nspeaker: author\ntext: body\n"
                                          "labels: {intent: intent}\nroles: {customer: user, agent: assistant}\n")
    rejects = Rejects(echo=False)
    dialogues = list(read_dialogues(nested, rejects, mapping=tmp_path / "nested.yaml"))
    assert [d.id for d in dialogues] == ["c1"] and rejects.count == 1
    assert [(t.role, t.labels) for t in dialogues[0].turns] == [("user", {"intent": "lost"}), ("assistant", {})]

    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    table = pa.table({"dialogue": ["a", "a", "b"], "turn": [2, 1, 1], "who": ["bot", "me", "me"],
                      "text": ["hello", "hi", "bye"]})
    pq.write_table(table, tmp_path / "rows.parquet")
    (tmp_path / "rows.yaml").write_text("dialogue: dialogue\norder: turn\nspeaker: who\ntext: text\n"
                                        "roles: {bot: assistant, default: user}\n")
    dialogues = list(read_dialogues(tmp_path / "rows.parquet", Rejects(echo=False), mapping=tmp_path / "rows.yaml"))
    assert [[(t.role, t.text) for t in d.turns] for d in dialogues] == [[("user", "hi"), ("assistant", "hello")],
                                                                         [("user", "bye")]]


def test_a_bad_map_is_a_message(tmp_path):
    from dialpref.data import Rejects, read_dialogues
    from dialpref.data.formats import SourceError

    (tmp_path / "d.csv").write_text("a,b\n1,2\n")
    (tmp_path / "m.yaml").write_text("dialogue: a\ntext: missing_column\n")
    with pytest.raises(SourceError, match="no column"):
        list(read_dialogues(tmp_path / "d.csv", Rejects(echo=False), mapping=tmp_path / "m.yaml"))
    (tmp_path / "m.yaml").write_text("dialogue: a\ntext: b\nparse: {b: nonsense}\n")
    with pytest.raises(SourceError, match="unknown parser"):
        list(read_dialogues(tmp_path / "d.csv", Rejects(echo=False), mapping=tmp_path / "m.yaml"))
