"""ECE, reliability and post-hoc calibration on scores whose answers are known by construction."""

import numpy as np
import pytest

from dialpref.evaluate.calibration_error import ece, quality, reliability
from dialpref.label.calibration import Calibrator, plot_ece_by_n, plot_reliability


def test_ece_by_hand():
    # two rows at confidence 0.9 (one right, one wrong) and one at 0.6 (right), 10 buckets:
    # bucket 0.8-0.9: |0.5 - 0.9| * 2/3; bucket 0.5-0.6: |1 - 0.6| * 1/3
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.4, 0.6]])
    gold = np.array([0, 1, 1])
    assert ece(probs, gold, 10) == pytest.approx(0.4 * 2 / 3 + 0.4 / 3)
    assert ece(np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([0, 1])) == 0.0  # confident and right
    buckets = reliability(probs, gold, 5)
    assert sum(b["count"] for b in buckets) == 3 and buckets[4]["accuracy"] == 0.5


def _overconfident(n=2000, seed=0):
    rng = np.random.default_rng(seed)
    true = rng.dirichlet([1, 1, 1], size=n)
    gold = np.array([rng.choice(3, p=p) for p in true])
    sharp = true ** 4
    return sharp / sharp.sum(axis=1, keepdims=True), gold


@pytest.mark.parametrize("method", ["temperature", "isotonic"])
def test_post_hoc_calibration_lowers_ece_on_held_out_rows(method):
    dev_p, dev_g = _overconfident(seed=1)
    test_p, test_g = _overconfident(seed=2)
    calibrator = Calibrator(method, ["a", "b", "c"])
    assert calibrator.fit(dev_p, dev_g) is calibrator  # the scikit-learn shape: fit returns self
    after = calibrator.transform(test_p)
    assert np.allclose(after.sum(axis=1), 1.0)
    assert ece(after, test_g) < ece(test_p, test_g) / 2
    if method == "temperature":
        assert calibrator.temperature_ > 2  # sharpened by p**4: the fit must soften it back
        assert (after.argmax(axis=1) == test_p.argmax(axis=1)).all()  # temperature keeps the ranking


def test_quality_uses_macro_f1_and_plots_are_pngs(tmp_path):
    probs = np.array([[0.8, 0.2], [0.7, 0.3], [0.2, 0.8]])
    gold = np.array([0, 1, 1])
    q = quality(probs, gold)
    assert q["accuracy"] == pytest.approx(2 / 3) and q["macro_f1"] == pytest.approx(2 / 3)
    png = plot_reliability({"x": (probs, gold)}, tmp_path / "r.png")
    curve = plot_ece_by_n({"t": {1: 0.3, 5: 0.2, 30: 0.1}}, tmp_path / "n.png", expected={"t": 0.12})
    for path in (png, curve):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
