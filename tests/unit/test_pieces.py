"""Long clips in pieces: where the cuts go, what each piece carries, and the joined mel."""

from __future__ import annotations

import itertools

import pytest
import torch

from dubops.speech.generator import SpeechGenerator, sample_plans
from dubops.speech.pieces import piece_spans, split_plan
from dubops.speech.synthesis import aligned_text
from tests.fixtures.random_generator import CONCLUSION, random_generator, sine_prompt

SCRIPT = (
    "The rain kept falling on the old town while we waited by the station for a train "
    "that never came, and nobody said a word until the lights went out."
)


def _frames(spans: list[tuple[int, int]], durations: list[int]) -> list[int]:
    return [sum(durations[a:b]) for a, b in spans]


def test_a_clip_within_the_limit_is_one_piece():
    assert piece_spans(torch.tensor([10, 20, 30]), None, 60) == [(0, 3)]


def test_cuts_fall_after_pauses_into_pieces_of_about_equal_length():
    # Ten words of 4 phonemes x 10 frames, each followed by a 5-frame pause: 450 frames.
    durations, pause = [], []
    for _ in range(10):
        durations += [10, 10, 10, 10, 5]
        pause += [False, False, False, False, True]
    spans = piece_spans(torch.tensor(durations), torch.tensor(pause), 200)
    lengths = _frames(spans, durations)
    assert len(spans) == 3 and max(lengths) <= 200
    assert max(lengths) - min(lengths) <= 45  # one word: the cuts only fall between words
    assert all(pause[b - 1] for _, b in spans[:-1])  # each piece ends with its pause
    assert spans[0][0] == 0 and spans[-1][1] == len(durations)
    assert all(a == b for (_, a), (b, _) in itertools.pairwise(spans))


def test_no_pause_in_reach_cuts_at_a_phoneme_boundary_and_a_long_phoneme_stays_whole():
    spans = piece_spans(torch.tensor([30] * 10), torch.zeros(10, dtype=torch.bool), 100)
    assert max(_frames(spans, [30] * 10)) <= 100 and sum(_frames(spans, [30] * 10)) == 300
    assert piece_spans(torch.tensor([10, 500, 10]), None, 100) == [(0, 1), (1, 2), (2, 3)]


@pytest.fixture(scope="module")
def generator() -> SpeechGenerator:
    return random_generator("speech.sampler.nfe=2", "speech.pieces.max_seconds=2.0")


def _plan(generator: SpeechGenerator, seconds: float, seed: int = 0, script: str = SCRIPT):
    return generator.prepare(
        script, sine_prompt(), 24_000, target_seconds=seconds, conclusion=CONCLUSION, seed=seed
    )


def test_each_piece_carries_the_prompt_and_its_own_slice(generator):
    plan = _plan(generator, 7.0)
    pieces = split_plan(plan, 200)
    n_p = len(plan.prompt_mel)
    assert len(pieces) >= 3 and sum(p.target_frames for p in pieces) == plan.target_frames
    offset = 0
    for index, piece in enumerate(pieces):
        assert piece.target_frames <= 200 and piece.seed == plan.seed + index
        assert torch.equal(piece.prompt_mel, plan.prompt_mel)
        assert torch.equal(piece.condition[:, :n_p], plan.condition[:, :n_p])
        target = plan.condition[:, n_p + offset : n_p + offset + piece.target_frames]
        assert torch.equal(piece.condition[:, n_p:], target)
        assert torch.equal(piece.text, aligned_text(n_p, piece.phonemes, piece.durations))
        # The aligned text of the pieces is the clip's, slice by slice.
        clip_text = plan.text[0, n_p + offset : n_p + offset + piece.target_frames]
        assert torch.equal(piece.text[0, n_p:], clip_text)
        offset += piece.target_frames


def test_a_long_clip_is_sampled_in_pieces_and_a_short_one_as_before(generator):
    long, short = _plan(generator, 7.0), _plan(generator, 1.5, 3, "Good morning.")
    limit = 200
    joined, alone = sample_plans(generator.model, [long, short], limit, max_batch=2)
    assert joined.shape == (long.target_frames, 100) and torch.isfinite(joined).all()
    # The short clip is one piece: the same mel as sampled without pieces.
    torch.testing.assert_close(alone, sample_plans(generator.model, [short])[0])
    # Each piece of the long clip is the mel of that piece sampled on its own.
    pieces = split_plan(long, limit)
    first = sample_plans(generator.model, [pieces[0]])[0]
    torch.testing.assert_close(joined[: pieces[0].target_frames], first, atol=1e-4, rtol=1e-4)


def test_the_generator_speaks_a_long_slot_exactly(generator):
    wave = generator.generate(
        SCRIPT, sine_prompt(), 24_000, target_seconds=7.0, conclusion=CONCLUSION
    )
    assert abs(len(wave) / 24_000 - 7.0) < 256 / 24_000 * 1.5
