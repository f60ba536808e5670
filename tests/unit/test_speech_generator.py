"""SpeechGenerator on a random tiny model: slot fit, guidance, and clear input errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dubops.speech.generator import Ablation, SpeechGenerator
from dubops.speech.guidance import multi_condition
from dubops.speech.inputs import SpeechInputError
from dubops.speech.settings import GuidanceScales
from dubops.speech.text import ScriptError
from tests.fixtures.random_generator import CONCLUSION, random_generator, sine_prompt


@pytest.fixture(scope="module")
def generator() -> SpeechGenerator:
    return random_generator("speech.sampler.nfe=4")


def test_speech_fills_the_video_slot_exactly(generator):
    frames = np.zeros((50, 40, 40, 3), dtype=np.uint8)  # 2.0 s at 25 fps
    wave = generator.generate(
        "Hello there.", sine_prompt(), 24_000, video_frames=frames, conclusion=CONCLUSION
    )
    assert abs(len(wave) / 24_000 - 2.0) < 256 / 24_000 * 1.5
    assert np.isfinite(wave).all()


def test_target_seconds_without_video_and_ablations(generator):
    for name in ("none", "no-visual", "no-conclusion", "no-duration"):
        wave = generator.generate(
            "Good morning.",
            sine_prompt(),
            24_000,
            target_seconds=1.5,
            conclusion=CONCLUSION,
            ablation=Ablation.named(name),
        )
        assert abs(len(wave) / 24_000 - 1.5) < 0.02


def test_wrong_prompt_rate_is_resampled_not_refused(generator):
    wave = generator.generate("Yes.", sine_prompt(rate=16_000), 16_000, target_seconds=1.0)
    assert abs(len(wave) / 24_000 - 1.0) < 0.02


@pytest.mark.parametrize(
    ("kwargs", "error", "field"),
    [
        ({"script": "   "}, ScriptError, "script"),
        ({"prompt_wav": sine_prompt(0.3)}, SpeechInputError, "prompt_wav"),
        ({"target_seconds": 0.05}, SpeechInputError, "video"),
        ({"target_seconds": None}, SpeechInputError, "video"),
        ({"conclusion": {**CONCLUSION, "emotion": "bored"}}, SpeechInputError, "conclusion"),
    ],
)
def test_bad_input_is_a_clear_error(generator, kwargs, error, field):
    call = {
        "script": "Hello there, how are you today?",
        "prompt_wav": sine_prompt(),
        "prompt_sample_rate": 24_000,
        "target_seconds": 2.0,
        "conclusion": CONCLUSION,
    }
    call.update(kwargs)
    with pytest.raises(error, match=field):
        generator.generate(**call)


def test_unknown_characters_are_dropped_with_the_rest_spoken(generator):
    wave = generator.generate("Hello ☃ there!", sine_prompt(), 24_000, target_seconds=1.0)
    assert len(wave) > 0


def test_guidance_composition_reduces_to_conditional_at_unit_scales():
    guidance, keeps = multi_condition(GuidanceScales(visual=1, conclusion=1, script=1))
    assert keeps == [(True, True)] and len(guidance.variants) == 1
    guidance, keeps = multi_condition(GuidanceScales(visual=2, conclusion=3, script=4))
    v = [torch.full((1,), x) for x in (10.0, 6.0, 5.0, 1.0)]  # full, V+C, V, none
    assert float(guidance.combine(v)[0]) == 1 + 2 * (5 - 1) + 3 * (6 - 5) + 4 * (10 - 6)
    assert keeps == [(True, True), (True, True), (True, False), (False, False)]


@pytest.mark.parametrize(
    ("scales", "branches"),
    [((1.0, 1.0, 2.0), 2), ((1.0, 1.5, 2.0), 3), ((2.0, 1.0, 1.0), 4), ((1.0, 2.0, 1.0), 3)],
)
def test_unit_scales_at_the_bottom_drop_their_branches(scales, branches):
    visual, conclusion, script = scales
    reduced, keeps = multi_condition(
        GuidanceScales(visual=visual, conclusion=conclusion, script=script)
    )
    assert len(reduced.variants) == len(keeps) == branches
    v = [torch.randn(3, 5, dtype=torch.float64) for _ in range(4)]  # full, V+C, V, none
    full = v[3] + visual * (v[2] - v[3]) + conclusion * (v[1] - v[2]) + script * (v[0] - v[1])
    assert torch.allclose(reduced.combine(v[:branches]), full)


def test_word_slots_give_every_word_boundary_a_pause_that_may_take_no_frames(generator):
    speech = generator.speech.model_copy(deep=True)
    speech.duration.word_slots = True
    slotted = SpeechGenerator(generator.model, generator.vocab, speech, generator.audio)
    script = "We have to talk about the door."
    pause = generator.vocab.index["_"]
    plain_ids, slot_ids = generator.phoneme_ids(script), slotted.phoneme_ids(script)
    assert int((slot_ids == pause).sum()) > int((plain_ids == pause).sum())
    assert slot_ids[slot_ids != pause].equal(plain_ids[plain_ids != pause])
    wave = slotted.generate(
        script, sine_prompt(), 24_000, target_seconds=2.0, conclusion=CONCLUSION
    )
    assert len(wave) == len(generator.generate(script, sine_prompt(), 24_000, target_seconds=2.0))


def test_mouth_tracks_move_the_words_onto_the_open_mouth(generator):
    from dubops.speech.generator import clip_durations
    from dubops.speech.lip_align import mouth_activity

    speech = generator.speech.model_copy(deep=True)
    speech.duration.word_slots = True
    slotted = SpeechGenerator(generator.model, generator.vocab, speech, generator.audio)
    ids = slotted.phoneme_ids("We have to talk about the door.")
    pause_id = generator.vocab.index["_"]
    frames = torch.zeros(1, 50, 3, 48, 48, dtype=torch.uint8)
    labels = {k: torch.tensor([0]) for k in ("scene_type", "gender", "age", "emotion")}
    with torch.no_grad():
        video = generator.model.visual(frames)
        tokens = generator.model.conclusion(labels, torch.tensor([True]))
    mouth = np.r_[np.ones(20), np.full(10, 0.1), np.ones(20)][None]  # closes mid-line
    item = {"phonemes": ids, "pause_id": pause_id}
    plain = clip_durations(generator.model, item, ids, video, tokens, 188, speech)
    moved = clip_durations(
        generator.model, {**item, "mouth": mouth}, ids, video, tokens, 188, speech
    )
    assert int(plain.sum()) == int(moved.sum()) == 188
    spoken = (ids != pause_id).numpy()
    activity = mouth_activity(mouth[0], 188)

    def under_words(durations: torch.Tensor) -> float:
        return float(activity[np.repeat(spoken, durations.numpy())].sum())

    assert under_words(moved) > under_words(plain)
    # The video ablation leaves the prediction alone.
    kept = clip_durations(
        generator.model,
        {**item, "mouth": mouth},
        ids,
        video,
        tokens,
        188,
        speech,
        Ablation(visual=False),
    )
    assert kept.equal(
        clip_durations(generator.model, item, ids, video, tokens, 188, speech, Ablation(False))
    )
