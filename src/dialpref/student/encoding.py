"""Windows as the tokenizer's own encodings, for any Hugging Face encoder.

The tokenizer decides what a model takes (`model_input_names`: BERT adds `token_type_ids` for the
context segment, DistilBERT and RoBERTa do not), so nothing here rebuilds segments by hand. Truncation
keeps the utterance whole and cuts the oldest context tokens first (`only_second` from the left); only an
utterance too long for the window by itself loses its context entirely and then its own oldest tokens.
The torch student, the ONNX runtime and the server all encode through `encode_windows` and `pad`, so
they see the same tokens.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from dialpref.data.windows import Window


def input_names(tokenizer, model_config=None) -> list[str]:
    """The inputs the model takes, in the tokenizer's order; no `token_type_ids` where the model has a
    single segment type (RoBERTa-style `type_vocab_size=1` would index out of range with a 1)."""
    names = list(tokenizer.model_input_names)
    if model_config is not None and getattr(model_config, "type_vocab_size", 2) < 2 and "token_type_ids" in names:
        names.remove("token_type_ids")
    return names


def encode_windows(tokenizer, windows: Sequence[Window], max_length: int) -> list[dict[str, list[int]]]:
    """One encoding per window: (utterance, context) as a sentence pair, at most `max_length` tokens."""
    tokenizer.truncation_side = "left"  # the oldest context first
    special = tokenizer.num_special_tokens_to_add(pair=True)
    own = tokenizer([w.text for w in windows], add_special_tokens=False)["input_ids"]
    fits = [len(ids) + special < max_length for ids in own]
    out: list[dict[str, list[int]] | None] = [None] * len(windows)
    pairs = [i for i, ok in enumerate(fits) if ok]
    if pairs:
        enc = tokenizer([windows[i].text for i in pairs], [windows[i].context for i in pairs],
                        truncation="only_second", max_length=max_length)
        for row, i in enumerate(pairs):
            out[i] = {k: enc[k][row] for k in enc.keys()}
    alone = [i for i, ok in enumerate(fits) if not ok]
    if alone:
        enc = tokenizer([windows[i].text for i in alone], truncation=True, max_length=max_length)
        for row, i in enumerate(alone):
            out[i] = {k: enc[k][row] for k in enc.keys()}
    return out  # type: ignore[return-value]


def pad(encodings: Sequence[dict[str, list[int]]], rows: Sequence[int], names: Sequence[str],
        pad_id: int) -> dict[str, np.ndarray]:
    """The encodings of `rows` padded to the longest of them, int64 arrays by input name."""
    width = max(len(encodings[i]["input_ids"]) for i in rows)
    batch = {}
    for name in names:
        array = np.full((len(rows), width), pad_id if name == "input_ids" else 0, dtype=np.int64)
        for r, i in enumerate(rows):
            values = encodings[i][name]
            array[r, :len(values)] = values
        batch[name] = array
    return batch
