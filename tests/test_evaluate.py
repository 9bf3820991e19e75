"""The figures every report states: accuracy, macro-F1, majority class, agreement with its interval."""

import pytest

from dialpref.evaluate.classification import agreement, classification, majority_class


def test_agreement_has_the_wilson_interval():
    a = agreement(["x"] * 50 + ["y"] * 50, ["x"] * 100)
    assert a["agreement"] == 0.5 and a["n"] == 100
    assert a["low"] == pytest.approx(0.4038, abs=1e-3) and a["high"] == pytest.approx(0.5962, abs=1e-3)
    perfect = agreement(["x"] * 20, ["x"] * 20)
    assert perfect["agreement"] == 1.0 and perfect["high"] == pytest.approx(1.0) and perfect["low"] < 0.9


def test_macro_f1_counts_a_class_never_predicted_as_zero():
    got = classification(["a", "b", "c", "a"], ["a", "b", "b", "a"], ["a", "b", "c", "d"])
    assert got["accuracy"] == 0.75
    assert got["macro_f1"] == pytest.approx((1.0 + 2 / 3 + 0 + 0) / 4, abs=1e-4)


def test_majority_class_is_the_most_common_gold_label():
    got = majority_class(["a", "b", "b", "b"], ["a", "b"])
    assert got["class"] == "b" and got["accuracy"] == 0.75


def test_one_strict_reader_for_inputs_names_file_and_line(tmp_path):
    """Predictions, samples and gzipped score files all go through rows.read_rows_strict: a damaged line is an
    error that names the file and the line, never a traceback from json or a silently skipped row."""
    import gzip
    import json

    import pytest

    from dialpref.next_utterance.evaluate import read_predictions
    from dialpref.rows import read_rows_lenient, read_rows_strict

    packed = tmp_path / "scores.jsonl.gz"
    with gzip.open(packed, "wt", encoding="utf-8") as handle:
        handle.write(json.dumps({"a": 1}) + "\n\n" + json.dumps({"a": 2}) + "\n")
    assert read_rows_strict(packed) == [{"a": 1}, {"a": 2}]
    predictions = tmp_path / "predictions.jsonl"
    good = {"sample_id": "s0", "predictions": ["hi"], "think": "", "raw": "", "error": None, "truncated": False}
    predictions.write_text(json.dumps(good) + "\n" + '{"sample_id": "s1", "predic\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"predictions\.jsonl:2: not a JSON row"):
        read_predictions(predictions)
    assert [r["sample_id"] for r in read_rows_lenient(predictions)] == ["s0"]  # an append log skips the cut line
