"""A generated corpus of malformed dialogue files, each with what a correct reader must make of it.

Each case writes one file (or folder, or link) into a directory and says how many dialogues
are good and how many records the file holds in all (`read + rejected = total` must hold), or
that the whole file is unreadable and what its one-line message must say. Used by
tests/test_fault_suite.py (in process) and benchmarks/fault_suite.py (through the CLI).
"""

from __future__ import annotations

import gzip
import io
import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable


def sharegpt(i: int | str, text: str = "hello there") -> dict:
    return {"id": f"d{i}" if isinstance(i, int) else i,
            "conversations": [{"from": "human", "value": f"hi {i}"}, {"from": "gpt", "value": text}]}


def convlab(i: int, acts=None) -> dict:
    acts = {"binary": [], "categorical": [{"intent": "inform", "domain": "", "slot": "", "value": ""}],
            "non-categorical": []} if acts is None else acts
    return {"dataset": "dailydialog", "data_split": "train", "dialogue_id": f"dailydialog-train-{i}",
            "turns": [{"speaker": "user", "utterance": f"how are you {i}", "utt_idx": 0, "dialogue_acts": acts,
                       "emotion": "no emotion"},
                      {"speaker": "system", "utterance": "fine", "utt_idx": 1, "dialogue_acts": acts}]}


def lines(*records) -> bytes:
    return b"".join((r if isinstance(r, bytes) else json.dumps(r).encode()) + b"\n" for r in records)


MELD_HEADER = "Sr No.,Utterance,Speaker,Emotion,Sentiment,Dialogue_ID,Utterance_ID,Season,Episode,StartTime,EndTime\n"


def meld_row(sr: int, text: str, dialogue: int, utt: int | str) -> str:
    return f'{sr},"{text}",Ross,joy,positive,{dialogue},{utt},1,1,"00:00:01,000","00:00:02,000"\n'


def meld(rows: list[str]) -> bytes:
    return (MELD_HEADER + "".join(rows)).encode()


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _zip_streamed(name: str, pieces: Callable[[], list[bytes]]) -> bytes:
    """A zip whose member is written piece by piece (a 200 MB member without 200 MB in memory)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open(name, "w", force_zip64=True) as member:
            for piece in pieces():
                member.write(piece)
    return buffer.getvalue()


def _huge_utterance_pieces() -> list[bytes]:
    head = json.dumps([convlab(1)])[:-1].encode() + b', {"dataset": "x", "dialogue_id": "huge", "turns": ' \
        b'[{"speaker": "user", "utterance": "'
    tail = b'"}]}, ' + json.dumps(convlab(3)).encode() + b"]"
    return [head] + [b"y" * (1 << 20)] * 200 + [tail]


def _gzip(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def _bad_crc(data: bytes) -> bytes:
    packed = bytearray(_gzip(data))
    packed[-8] ^= 0xFF  # the CRC32 in the trailer
    return bytes(packed)


def _corrupt_middle(data: bytes) -> bytes:
    packed = bytearray(_gzip(data))
    middle = len(packed) // 2
    packed[middle:middle + 16] = b"\x00" * 16
    return bytes(packed)


def recoverable_lines(packed: bytes) -> int:
    """Complete lines in the part of a damaged gzip stream that still decompresses."""
    import zlib

    inflater = zlib.decompressobj(wbits=31)
    data = b""
    for start in range(0, len(packed), 512):
        try:
            data += inflater.decompress(packed[start:start + 512])
        except zlib.error:
            break
    return data.count(b"\n")


@dataclass
class InputCase:
    name: str
    filename: str
    build: Callable[[], bytes] | None  # None: the case makes its own path (folders, links)
    good: int | None  # dialogues a correct reader yields; None when the file is refused whole
    total: int | None = None  # records in the file: good + rejected must equal it
    message: str = ""  # what the one-line error (or the first reject) must say
    format: str | None = None
    big: bool = False  # costs seconds and disk: memory is measured on these
    partial: bool = False  # a compressed file damaged part-way: what precedes the damage, then one reject
    make: Callable[[Path], Path] | None = None

    def write(self, folder: Path) -> Path:
        if self.make is not None:
            return self.make(folder)
        path = folder / self.filename
        path.write_bytes(self.build())
        return path


def _folder(root: Path) -> Path:
    path = root / "a_folder"
    path.mkdir(exist_ok=True)
    return path


def _symlink_loop(root: Path) -> Path:
    a, b = root / "loop_a.jsonl", root / "loop_b.jsonl"
    for link, target in ((a, b), (b, a)):
        if not link.is_symlink():
            os.symlink(target, link)
    return a


def _dangling(root: Path) -> Path:
    link = root / "dangling.jsonl"
    if not link.is_symlink():
        os.symlink(root / "nowhere.jsonl", link)
    return link


GOOD3 = [sharegpt(1), sharegpt(2), sharegpt(3)]

CASES: list[InputCase] = [
    # --- records that must be one reject each, the rest of the file read -------------------------------
    InputCase("array_item_nested_100k", "deep.json",
              lambda: b"[" + json.dumps(sharegpt(1)).encode() + b", " + b"[" * 100_000 + b"]" * 100_000 + b", "
              + json.dumps(sharegpt(2)).encode() + b"]", 2, 3, "nested", big=True),
    InputCase("jsonl_line_nested_200k", "deep.jsonl",
              lambda: lines(sharegpt(1), b'{"a": ' + b"[" * 200_000 + b"]" * 200_000 + b"}", sharegpt(2)), 2, 3,
              "nested"),
    InputCase("object_value_nested_100k", "deep_object.json",
              lambda: b'{"a": ' + json.dumps(sharegpt("a")).encode() + b', "b": ' + b"[" * 100_000
              + b"]" * 100_000 + b"}", 1, 2, "nested"),
    InputCase("zip_member_200mb_utterance", "huge.zip",
              lambda: _zip_streamed("data/dialogues.json", _huge_utterance_pieces), 2, 3, "too large", big=True),
    InputCase("jsonl_line_20mb", "long_line.jsonl",
              lambda: lines(sharegpt(1), b'{"id": "x", "conversations": "' + b"z" * (20 << 20) + b'"}', sharegpt(2)),
              2, 3, "line too long", big=True),
    InputCase("array_non_object_items", "mixed.json",
              lambda: json.dumps([sharegpt(1), 1, "text", None, [1, 2], sharegpt(2)]).encode(), 2, 6,
              "not a JSON object"),
    InputCase("convlab_acts_as_list", "convlab.json",
              lambda: json.dumps([convlab(1), convlab(2, acts=[["inform", "", "", ""]]), convlab(3)]).encode(), 2, 3,
              "dialogue_acts should be"),
    InputCase("convlab_act_not_object", "convlab_act.json",
              lambda: json.dumps([convlab(1), convlab(2, acts={"categorical": ["inform"]})]).encode(), 1, 2,
              "should be an object"),
    InputCase("meld_superscript_id", "meld_sup.csv",
              lambda: meld([meld_row(1, "hi", 0, 0), meld_row(2, "yes", 0, "²"), meld_row(3, "no", 0, 1)]).replace(
                  b"\n", b"\r\n"), 1, 2, "is not a number"),
    InputCase("meld_field_over_131072", "meld_big.csv",
              lambda: meld([meld_row(1, "hi", 0, 0), meld_row(2, "x" * 200_000, 1, 0), meld_row(3, "ok", 2, 0)]),
              2, 3, "turn too long"),
    InputCase("lone_surrogate", "surrogate.jsonl",
              lambda: lines(sharegpt(1), b'{"id": "s", "conversations": [{"from": "human", "value": "\\ud800 hi"}]}',
                            sharegpt(2)), 2, 3, "surrogate"),
    InputCase("utf8_bom_jsonl", "bom.jsonl", lambda: b"\xef\xbb\xbf" + lines(*GOOD3), 3, 3),
    InputCase("utf8_bom_array", "bom.json", lambda: b"\xef\xbb\xbf" + json.dumps(GOOD3).encode(), 3, 3),
    InputCase("utf8_bom_meld", "bom_meld.csv",
              lambda: b"\xef\xbb\xbf" + meld([meld_row(1, "hi", 0, 0), meld_row(2, "yo", 0, 1)]), 1, 1),
    InputCase("meld_unclosed_quote", "meld_quote.csv",
              lambda: meld([meld_row(1, "hi", 0, 0), '2,"Oh no,Ross,joy,positive,0,1,1,1,00:01,00:02\n',
                            meld_row(3, "then", 1, 0), meld_row(4, "more", 1, 1), meld_row(5, "end", 2, 0)]), 3, 4,
              "quote left open"),
    InputCase("duplicate_ids", "dupes.jsonl", lambda: lines(sharegpt(1), sharegpt(2), sharegpt(1), sharegpt(3)), 3, 4,
              "duplicate dialogue id"),
    InputCase("id_zero", "zero.jsonl", lambda: lines({**sharegpt(1), "id": 0}, {**sharegpt(2), "id": ""}), 2, 2),
    InputCase("first_60_lines_broken", "broken_head.jsonl",
              lambda: lines(*[b"{not json" for _ in range(60)], *GOOD3), 3, 63, "malformed JSON"),
    InputCase("truncated_lines", "truncated.jsonl",
              lambda: lines(sharegpt(1), json.dumps(sharegpt(2))[:30].encode(), sharegpt(3)), 2, 3, "malformed"),
    InputCase("invalid_utf8", "latin1.jsonl",
              lambda: lines(sharegpt(1), b'{"id": "b", "conversations": [{"from": "human", "value": "caf\xe9"}]}',
                            sharegpt(2)), 2, 3, "non-UTF-8"),
    InputCase("nul_bytes", "nul.jsonl", lambda: lines(sharegpt(1), b"\x00\x00\x00{\x00}", sharegpt(2)), 2, 3,
              "malformed"),
    InputCase("wrong_types", "types.jsonl",
              lambda: lines(sharegpt(1), {"id": "t", "conversations": "hi"}, {"id": "u", "conversations": [5]},
                            {"id": ["x"], "conversations": sharegpt(9)["conversations"]}, sharegpt(2)), 2, 5, "should be"),
    InputCase("unknown_roles", "roles.jsonl",
              lambda: lines(sharegpt(1), {"id": "r", "conversations": [{"from": "narrator", "value": "x"}]}), 1, 2,
              "unknown role"),
    InputCase("truncated_json_array", "cut.json", lambda: json.dumps(GOOD3).encode()[:-40], 2, 3, "truncated"),
    InputCase("content_after_array", "trailing.json", lambda: json.dumps(GOOD3[:2]).encode() + b" garbage", 2, 3,
              "content after the end"),
    InputCase("crlf_jsonl", "crlf.jsonl", lambda: lines(*GOOD3).replace(b"\n", b"\r\n"), 3, 3),
    InputCase("truncated_gz", "cut.jsonl.gz", lambda: _gzip(lines(*[sharegpt(i) for i in range(400)]))[:-300],
              None, None, partial=True, message="ends early"),
    InputCase("gz_damaged_midway", "midway.jsonl.gz",
              lambda: _gzip(lines(*[sharegpt(i, text=f"{i} " * 40) for i in range(3000)]))[:-50], None, None,
              partial=True, message="ends early"),
    InputCase("bad_crc_gz", "crc.jsonl.gz", lambda: _bad_crc(lines(*GOOD3)), None, None, partial=True, message="damaged"),
    InputCase("corrupt_gz", "corrupt.jsonl.gz", lambda: _corrupt_middle(lines(*[sharegpt(i) for i in range(300)])),
              None, None, partial=True, message="damaged"),
    # --- whole files that cannot be read: one line that says why -----------------------------------------
    InputCase("empty_file", "empty.jsonl", lambda: b"", None, message="is empty"),
    InputCase("whitespace_only", "blank.jsonl", lambda: b"  \n\n\t \n", None, message="only white space"),
    InputCase("truncated_zip", "cut.zip", lambda: _zip({"dialogues.json": json.dumps(GOOD3).encode() * 50})[:-200],
              None, message="damaged or truncated zip"),
    InputCase("zip_without_dialogues", "other.zip", lambda: _zip({"README.md": b"hi", "img.png": b"\x89PNG"}), None,
              message="holds no dialogue file"),
    InputCase("all_lines_broken", "garbage.jsonl", lambda: b"this is not json\n" * 70, None, total=70,
              message="none of its 70 records"),
    InputCase("unknown_shape", "shape.jsonl", lambda: lines({"foo": 1}, {"foo": 2}), None,
              message="matches no known format"),
    InputCase("a_directory", "", None, None, message="is a folder", make=_folder),
    InputCase("symlink_loop", "", None, None, message="loops back", make=_symlink_loop),
    InputCase("dangling_symlink", "", None, None, message="does not exist", make=_dangling),
    InputCase("missing_file", "", None, None, message="no such file", make=lambda root: root / "absent.jsonl"),
]
