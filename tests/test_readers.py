"""Every reader on its real file, with gold labels on the right turn."""

from itertools import islice

import pytest

from dialpref.data import Rejects, detect_format, read_dialogues


def first(path, **kw):
    return next(iter(read_dialogues(path, **kw)))


def test_dailydialog_acts_and_emotion_land_on_their_turns(shared_data):
    path = shared_data / "dailydialog" / "data.zip"
    assert detect_format(path) == "convlab"
    dialogue = first(path)
    assert dialogue.id == "dailydialog-train-0"
    assert dialogue.turns[0].text.startswith("Say, Jim, how about going for a few beers")
    assert [t.labels["dialogue_act"] for t in dialogue.turns[:5]] == \
        ["directive", "commissive", "question", "question", "question"]
    assert dialogue.turns[0].labels["emotion"] == "no emotion"
    assert [t.role for t in dialogue.turns[:2]] == ["user", "assistant"]


def test_dailydialog_split_filter_streams_the_test_split(shared_data):
    test = list(read_dialogues(shared_data / "dailydialog" / "data.zip", split="test"))
    assert len(test) == 1000
    assert all(d.metadata["split"] == "test" for d in test)


def test_woz_state_is_on_user_turns(shared_data):
    dialogue = first(shared_data / "woz" / "data.zip")
    assert dialogue.turns[0].labels["state"]["restaurant"]["food"] == "eritrean"
    assert dialogue.turns[0].labels["dialogue_acts"][0]["slot"] == "food"
    assert "state" not in dialogue.turns[1].labels  # system turn


def test_camrest_reads_all_dialogues(shared_data):
    rejects = Rejects(echo=False)
    dialogues = list(read_dialogues(shared_data / "camrest" / "data.zip", rejects))
    assert len(dialogues) == 676 and rejects.count == 0
    assert dialogues[0].turns[0].labels["state"]["restaurant"]["price range"] == "expensive"


def test_meld_groups_and_orders_utterances(shared_data):
    path = shared_data / "meld" / "test_sent_emo.csv"
    assert detect_format(path) == "meld"
    dialogues = list(read_dialogues(path))
    assert sum(len(d.turns) for d in dialogues) == 2610
    d0 = dialogues[0]
    ids = [t.metadata["utterance_id"] for t in d0.turns]
    assert ids == sorted(ids) and ids[0] == 0
    assert d0.turns[0].speaker == "Mark" and d0.turns[0].labels == {"sentiment": "positive", "emotion": "surprise"}


def test_crosswoz_acts_and_state(shared_data):
    dialogues = list(read_dialogues(shared_data / "crosswoz" / "val.json.zip"))
    assert len(dialogues) == 500
    turn = dialogues[0].turns[0]
    assert turn.role == "user" and turn.labels["dialogue_acts"][0][:2] == ["General", "greet"]
    assert "state" in dialogues[0].turns[1].labels  # the system's belief state


def test_sharegpt_gzip_streams_and_drops_empty_turns(shared_data):
    path = shared_data / "sharegpt" / "sharegpt_v3_4k.jsonl.gz"
    rejects = Rejects(echo=False)
    dialogues = list(read_dialogues(path, rejects))
    assert len(dialogues) == 4002  # every dialogue kept...
    assert dialogues[0].id == "Z6o9gbY_0" and dialogues[0].turns[0].role == "user"
    assert rejects.reasons["empty turn dropped"] == rejects.count > 0  # ...its empty turns dropped, each reported
    dropped = [d for d in dialogues if d.metadata.get("dropped_turns")]
    assert sum(len(d.metadata["dropped_turns"]) for d in dropped) == rejects.count
    kept = dropped[0].turns
    assert all("source_index" in t.metadata for t in kept) and all(t.text.strip() for t in kept)
    strict = Rejects(echo=False, strict=True)  # the old rule on request: an empty turn rejects its dialogue
    assert len(list(read_dialogues(path, strict))) + strict.count == 4002 and strict.reasons["empty turn text"]


def test_lmsys_proutt_raw(shared_data):
    dialogues = list(read_dialogues(shared_data / "proutt_examples" / "raw_LMSYS.jsonl"))
    assert detect_format(shared_data / "proutt_examples" / "raw_LMSYS.jsonl") == "lmsys"
    assert [d.id for d in dialogues] == ["1", "2"]
    assert [t.role for t in dialogues[0].turns[:2]] == ["user", "assistant"]


def test_chitchat_package_dataset():
    pytest.importorskip("chitchat_dataset")
    dialogues = list(islice(read_dialogues("chitchat"), 20))
    assert len(dialogues) == 20
    assert {t.role for t in dialogues[0].turns} == {"user", "assistant"}
    assert dialogues[0].turns[0].text == "Hello How are you doing today?"
