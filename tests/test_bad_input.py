"""Every kind of bad input lands in the rejects file with file, line and reason; good records survive."""

import gzip
import json

from dialpref.data import Rejects, read_dialogues
from dialpref.data.formats import _io
from dialpref.data.schema import MAX_TURN_CHARS


def good(i):
    return {"id": f"ok{i}", "conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"}]}


def write_lines(path, lines):
    with path.open("wb") as handle:
        for line in lines:
            handle.write(line if isinstance(line, bytes) else json.dumps(line).encode())
            handle.write(b"\n")


def read_all(path, tmp_path, **kw):
    rejects = Rejects(tmp_path / "rejects.jsonl", echo=False)
    dialogues = list(read_dialogues(path, rejects, **kw))
    rejects.close()
    rows = [json.loads(l) for l in (tmp_path / "rejects.jsonl").read_text().splitlines()] \
        if (tmp_path / "rejects.jsonl").exists() else []
    return dialogues, rows


def test_each_bad_record_is_rejected_with_line_and_reason(tmp_path):
    path = tmp_path / "chats.jsonl"
    write_lines(path, [
        good(1),
        b'{"id": "broken", "conversations": [',                                        # 2 malformed JSON
        {"id": "nofield", "turns_missing": []},                                         # 3 missing field
        {"id": "empty", "conversations": []},                                           # 4 empty dialogue
        {"id": "role", "conversations": [{"from": "narrator", "value": "once upon"}]},  # 5 unknown role
        b'{"id": "bytes", "conversations": [{"from": "human", "value": "caf\xe9"}]}',   # 6 non-UTF-8
        {"id": "huge", "conversations": [{"from": "human", "value": "x" * (MAX_TURN_CHARS + 1)}]},  # 7
        {"id": "blank", "conversations": [{"from": "human", "value": "   "}]},          # 8 empty text
        good(9),
    ])
    dialogues, rows = read_all(path, tmp_path, format="sharegpt")
    assert [d.id for d in dialogues] == ["ok1", "ok9"]
    by_line = {r["line"]: r for r in rows}
    assert set(by_line) == {2, 3, 4, 5, 6, 7, 8}
    assert "malformed JSON" in by_line[2]["reason"]
    assert "missing field 'conversations'" in by_line[3]["reason"]
    assert "empty dialogue" in by_line[4]["reason"]
    assert "unknown role 'narrator'" in by_line[5]["reason"]
    assert "non-UTF-8" in by_line[6]["reason"]
    assert "over the" in by_line[7]["reason"] and "limit" in by_line[7]["reason"]
    assert "empty turn text" in by_line[8]["reason"]
    assert all(r["source"].endswith("chats.jsonl") for r in rows)
    assert by_line[5]["raw"]["id"] == "role"  # the record itself is kept


def test_giant_line_is_skipped_without_loading_it(tmp_path, monkeypatch):
    monkeypatch.setattr(_io, "MAX_LINE_BYTES", 1000)
    path = tmp_path / "chats.jsonl"
    big = {"id": "big", "conversations": [{"from": "human", "value": "y" * 5000}]}
    write_lines(path, [good(1), big, good(3)])
    dialogues, rows = read_all(path, tmp_path, format="sharegpt")
    assert [d.id for d in dialogues] == ["ok1", "ok3"]
    assert rows[0]["line"] == 2 and "line too long" in rows[0]["reason"]


def test_gzip_and_detection(tmp_path):
    path = tmp_path / "chats.jsonl.gz"
    with gzip.open(path, "wt") as handle:
        handle.write("not json at all\n")
        for i in range(3):
            handle.write(json.dumps(good(i)) + "\n")
    dialogues, rows = read_all(path, tmp_path)  # format detected past the broken first line
    assert len(dialogues) == 3 and rows[0]["line"] == 1


def test_truncated_json_array_keeps_what_came_before(tmp_path):
    path = tmp_path / "sharegpt.json"
    text = json.dumps([good(1), good(2), good(3)])
    path.write_text(text[: len(text) - 40])
    dialogues, rows = read_all(path, tmp_path)
    assert [d.id for d in dialogues] == ["ok1", "ok2"]
    assert "truncated" in rows[0]["reason"]


def test_meld_csv_bad_rows(tmp_path):
    path = tmp_path / "meld.csv"
    header = b"Sr No.,Utterance,Speaker,Emotion,Sentiment,Dialogue_ID,Utterance_ID\n"
    path.write_bytes(header
                     + b"1,Hi there,Ross,joy,positive,0,1\n"
                     + b"2,First line,Ross,neutral,neutral,0,0\n"
                     + b"3,Caf\xe9 bad bytes,Joey,neutral,neutral,1,0\n"
                     + b"4,,Joey,neutral,neutral,1,1\n"
                     + b"5,Fine,Joey,neutral,neutral,1,2\n")
    dialogues, rows = read_all(path, tmp_path)
    assert [t.text for t in dialogues[0].turns] == ["First line", "Hi there"]  # ordered by Utterance_ID
    assert [t.text for t in dialogues[1].turns] == ["Fine"]
    assert [(r["line"], r["reason"].split(" ")[0]) for r in rows] == [(4, "non-UTF-8"), (5, "missing")]


def test_openai_messages_and_native_roundtrip(tmp_path):
    path = tmp_path / "openai.jsonl"
    write_lines(path, [{"messages": [{"role": "system", "content": "be nice"},
                                     {"role": "user", "content": [{"type": "text", "text": "hi"}]},
                                     {"role": "assistant", "content": "hello"}]},
                       {"messages": [{"role": "tool", "content": "42"}]}])
    dialogues, rows = read_all(path, tmp_path)
    assert [t.role for t in dialogues[0].turns] == ["system", "user", "assistant"]
    assert dialogues[0].turns[1].text == "hi"
    assert "unknown role 'tool'" in rows[0]["reason"]
    native = tmp_path / "native.jsonl"
    native.write_text(dialogues[0].to_json() + "\n")
    again, _ = read_all(native, tmp_path)
    assert again == dialogues


def test_meld_dialogue_id_that_returns_later_is_a_second_part_not_merged(tmp_path):
    path = tmp_path / "meld.csv"
    path.write_bytes(b"Sr No.,Utterance,Speaker,Emotion,Sentiment,Dialogue_ID,Utterance_ID\n"
                     b"1,One,Ross,joy,positive,7,0\n2,Two,Joey,joy,positive,8,0\n3,Three,Ross,joy,positive,7,1\n")
    dialogues, rows = read_all(path, tmp_path)
    assert [d.id for d in dialogues] == ["meld-meld-7", "meld-meld-8", "meld-meld-7#2"]
    assert rows == []
