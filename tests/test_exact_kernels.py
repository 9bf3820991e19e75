"""Reused and streamed KV states give exactly the from-scratch distributions, on the model where they did not.

Gemma-3-270M (Q4_K_M) drifted by up to 0.11 in option probability under
llama.cpp's weight repacking and short batches; the teacher's exact mode must
remove that on reuse, on causal streaming, and on turns shorter than a batch.
"""

import pytest

from dialpref.data.schema import Dialogue
from dialpref.label.bank import BUILTIN_PROMPTS, utterance_queries
from dialpref.label.causal import causal_pieces, label_causal
from dialpref.label.tasks import BUILTIN
from dialpref.teachers.calls import normalise, option_probs
from dialpref.teachers.llamacpp import MIN_EXACT_BATCH, batch_bounds
from tests.conftest import embedded_teacher

TASK = BUILTIN["dialogue_act"]
# short turns ("Oh.", "Sure.") make batches under MIN_EXACT_BATCH tokens, the case that drifted
DIALOGUE = Dialogue(id="g1", turns=[
    {"speaker": "A", "role": "user", "text": "Did you hear that the library closes early on Fridays now?"},
    {"speaker": "B", "role": "assistant", "text": "Oh."},
    {"speaker": "A", "role": "user", "text": "So we should study at my place this week, if that suits you."},
    {"speaker": "B", "role": "assistant", "text": "Sure."},
    {"speaker": "A", "role": "user", "text": "Bring the notes from Tuesday's lecture, and some snacks too please."},
])


@pytest.fixture(scope="module")
def gemma():
    return embedded_teacher("gemma3-270m")


def test_batches_are_never_shorter_than_the_least_unless_everything_is():
    assert batch_bounds(515, 512, 8) == [(0, 507), (507, 515)]
    assert batch_bounds(1030, 512, 8) == [(0, 512), (512, 1022), (1022, 1030)]
    assert batch_bounds(20, 512, 8) == [(0, 20)]
    assert batch_bounds(3, 512, 8) == [(0, 3)]
    for n in range(1, 1200, 7):
        bounds = batch_bounds(n, 64, 8)
        assert bounds[0][0] == 0 and bounds[-1][1] == n
        assert all(a < b <= a + 64 for a, b in bounds) and all(b == c for (_, b), (c, _) in zip(bounds, bounds[1:]))
        assert all(b - a >= 8 for a, b in bounds) or n < 8


def test_gemma_prefix_reuse_equals_the_fresh_prompt_exactly(gemma):
    prompt = BUILTIN_PROMPTS["choice_names@v1"]
    for i in range(len(DIALOGUE.turns)):
        query = utterance_queries(prompt, TASK, DIALOGUE, i)[0]
        reused = option_probs(gemma, query.messages, query.options)
        gemma.reuse_prefix = False
        try:
            fresh = option_probs(gemma, query.messages, query.options)
        finally:
            gemma.reuse_prefix = True
        assert reused == fresh, i


def test_gemma_causal_mode_equals_the_fresh_prompt_exactly_and_reads_short_turns_whole(gemma):
    gemma.llm.n_tokens = 0  # nothing of an earlier prompt to reuse, so the head's cost is all counted
    before = gemma.evaluated_tokens
    rows = label_causal(gemma, TASK, DIALOGUE)
    spent = gemma.evaluated_tokens - before
    head, segments, ask = causal_pieces(TASK, DIALOGUE)
    ask_tokens = len(gemma.tokenize_piece(ask))
    read = len(gemma.tokenize(head)) + sum(len(gemma.tokenize_piece(s)) for s in segments)
    # each turn once with its question; a short turn + question is widened to MIN_EXACT_BATCH at most
    assert read + 5 * ask_tokens <= spent <= read + 5 * max(ask_tokens, MIN_EXACT_BATCH)
    for i, row in enumerate(rows):
        fresh = normalise(gemma.fresh_option_logprobs([head, *segments[:i + 1], ask], TASK.class_names).logprobs)
        assert row["per_prompt"]["causal@v1"] == fresh, i


def test_exact_and_default_kernels_are_cached_apart(gemma, tmp_path):
    from dialpref.teachers.cache import CachedTeacher, TeacherCache
    from dialpref.teachers.llamacpp import LlamaCppTeacher

    cache = TeacherCache(tmp_path / "c.sqlite")
    default = LlamaCppTeacher("gemma3-270m", n_ctx=512, exact=False)
    payload = {"text": "Class:", "options": TASK.class_names}
    assert CachedTeacher(gemma, cache).key("causal", payload) != CachedTeacher(default, cache).key("causal", payload)
    assert default.min_batch == 1 and gemma.min_batch == MIN_EXACT_BATCH
