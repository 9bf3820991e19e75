"""Figures from predictions and gold, with no model inside: the one place a report or benchmark gets them.

- `classification`: accuracy, macro-F1, the majority class, agreement with its Wilson interval;
- `calibration_error`: ECE and the reliability diagram's buckets, and `quality` (both at once);
- `next_utterance`: means over judged samples, win / tie / loss, judge-human agreement and Cohen's kappa.
"""
