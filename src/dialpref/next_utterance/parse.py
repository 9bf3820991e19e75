"""Reading a next-utterance model's generation: the think block and up to four predictions.

The one rule for every system (documented in docs/next.md):
- ProUtt styles: the predictions are the non-empty `<predict>...</predict>` spans, first four kept;
  the think block is the `<think>...</think>` span (or what comes before the first prediction).
- Simulator style: the whole generation, stripped, is one prediction.
- A generation with no prediction is a *format failure*: it is kept with its reason, and it scores 0
  under the judge and embedding similarity and loses a pairwise comparison (a tie when both fail).

`lenient_predictions` is a second, looser reading reported beside the rule (never instead of it): a
failed generation's first four non-empty lines, tags removed, stand in for its predictions. It shows
how much of a gap is format alone (a prompted 135M base model almost never writes `<predict>`).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

PREDICT = re.compile(r"<predict>(.*?)</predict>", re.S | re.I)
THINK = re.compile(r"<think>(.*?)(?:</think>|$)", re.S | re.I)
TAG = re.compile(r"</?(?:think|predict)>", re.I)
MAX_PREDICTIONS = 4
MAX_PREDICTION_CHARS = 600


@dataclass
class Prediction:
    sample_id: str
    predictions: list[str] = field(default_factory=list)
    think: str = ""
    raw: str = ""
    error: str | None = None
    truncated: bool = False  # stopped by max_new_tokens rather than by the model
    budget_forced: bool = False  # reasoning was closed at the think budget and `<predict>` given (predict.py)

    @property
    def failed(self) -> bool:
        return not self.predictions

    def to_dict(self) -> dict:
        return asdict(self)


def parse_trace(sample_id: str, text: str, *, truncated: bool = False) -> Prediction:
    found = [p.strip()[:MAX_PREDICTION_CHARS] for p in PREDICT.findall(text)]
    predictions = [p for p in found if p][:MAX_PREDICTIONS]
    think_match = THINK.search(text)
    think = think_match.group(1).strip() if think_match else text.split("<predict>", 1)[0].strip()
    error = None
    if not predictions:
        error = "no <predict> line" + (" (cut off at max_new_tokens)" if truncated else "")
    elif len(predictions) < MAX_PREDICTIONS:
        error = f"{len(predictions)} of {MAX_PREDICTIONS} predictions"
    return Prediction(sample_id, predictions, think, text, error, truncated)


def parse_utterances(sample_id: str, texts: list[str], *, truncated: bool = False) -> Prediction:
    """Simulator style: each sampled generation is one prediction."""
    predictions = [t.strip()[:MAX_PREDICTION_CHARS] for t in texts if t.strip()][:MAX_PREDICTIONS]
    error = None if predictions else "empty generation"
    return Prediction(sample_id, predictions, "", "\n<sep>\n".join(texts), error, truncated)


def lenient_predictions(prediction: Prediction) -> list[str]:
    """The parsed predictions, or (for a format failure) the generation's first four non-empty lines."""
    if prediction.predictions:
        return prediction.predictions
    lines = [TAG.sub("", line).strip() for line in prediction.raw.replace("\n<sep>\n", "\n").splitlines()]
    return [line[:MAX_PREDICTION_CHARS] for line in lines if line][:MAX_PREDICTIONS]
