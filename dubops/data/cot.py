"""Chain-of-thought annotations in DeepDubber-V1's four tags, and rejected variants.

The answer follows the paper's reasoning steps (section 4.1): count the people,
tell whether they talk, decide dialogue / monologue / narration, conclude. The
conclusion has one fixed machine-readable form that the reasoner's strict
parser reads back::

    <CONCLUSION>scene_type=dialogue; gender=female; age=adult; emotion=anger</CONCLUSION>

Rejected variants (wrong count, wrong scene type, wrong attribute, broken
format) are the "rejected" side of MPO's preference pairs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from dubops.data.schema import AGES, EMOTIONS, GENDERS, SCENE_TYPES

NUMBER_WORDS = ("no", "one", "two", "three")
POSITIONS = {
    1: ("in the middle",),
    2: ("on the left", "on the right"),
    3: ("on the left", "in the middle", "on the right"),
}
AGE_WORDS = {"child": "child", "adult": "adult", "elderly": "elderly"}
PERSON_WORDS = {
    ("female", "child"): "girl",
    ("male", "child"): "boy",
    ("female", "adult"): "woman",
    ("male", "adult"): "man",
    ("female", "elderly"): "old woman",
    ("male", "elderly"): "old man",
}
EMOTION_LOOKS = {
    "anger": "frowning with lowered brows",
    "disgust": "wrinkling the nose with a sour mouth",
    "fear": "wide-eyed with raised brows",
    "joy": "smiling brightly",
    "neutral": "with a calm face",
    "sadness": "with drooping brows and a downturned mouth",
    "surprise": "with raised brows and a round mouth",
}
SCENE_LIGHT = {
    "anger": "harsh red light",
    "disgust": "murky olive light",
    "fear": "dark greenish shadows",
    "joy": "warm bright light",
    "neutral": "plain daylight",
    "sadness": "dim blue light",
    "surprise": "vivid purple light",
}
EMOTION_ADJECTIVES = {
    "anger": "angry",
    "disgust": "disgusted",
    "fear": "afraid",
    "joy": "joyful",
    "neutral": "neutral",
    "sadness": "sad",
    "surprise": "surprised",
}
SUMMARIES = (
    "I will count the people in the clip, check who is speaking, decide the dubbing style"
    " and then describe the voice.",
    "To choose the dubbing style I look at how many people appear, whether their mouths move,"
    " and what the scene feels like.",
    "First I count the characters, then I see who talks, then I classify the scene"
    " and describe the speaker.",
)


def _a(word: str) -> str:
    return f"an {word}" if word[0] in "aeiou" else f"a {word}"


@dataclass(frozen=True)
class OnScreen:
    """One character as the annotation describes it."""

    gender: str
    age: str
    emotion: str
    talking: bool


def format_conclusion(scene_type: str, gender: str, age: str, emotion: str) -> str:
    """The fixed machine-readable conclusion body."""
    return f"scene_type={scene_type}; gender={gender}; age={age}; emotion={emotion}"


def _caption(people: list[OnScreen], scene_emotion: str, rng: np.random.Generator) -> str:
    if not people:
        return f"The frame shows an empty scene in {SCENE_LIGHT[scene_emotion]}; nobody is visible."
    parts = []
    for pos, person in zip(POSITIONS[len(people)], people, strict=True):
        who = PERSON_WORDS[(person.gender, person.age)]
        parts.append(f"{_a(who)} {pos}, {EMOTION_LOOKS[person.emotion]}")
    opener = str(rng.choice(("The scene shows", "We see", "On screen there is")))
    return f"{opener} {'; '.join(parts)}, in {SCENE_LIGHT[scene_emotion]}."


def _reasoning(
    people: list[OnScreen],
    scene_type: str,
    gender: str,
    age: str,
    emotion: str,
    count_override: int | None = None,
) -> str:
    count = len(people) if count_override is None else count_override
    verb, noun = ("is", "person") if count == 1 else ("are", "people")
    step1 = f"Step 1: There {verb} {NUMBER_WORDS[count]} {noun} in the video."
    talkers = [i for i, p in enumerate(people) if p.talking]
    if not people:
        step2 = "Step 2: Nobody is on screen, so no one in the video is talking."
    elif talkers:
        pos = POSITIONS[len(people)][talkers[0]]
        step2 = f"Step 2: The character {pos} moves the mouth in time with the speech; " + (
            "the others stay silent." if len(people) > 1 else "no one else is there."
        )
    else:
        step2 = "Step 2: The mouths stay closed, so none of the people on screen is talking."
    step3 = {
        "dialogue": "Step 3: Several people share the scene and one of them speaks to the others,"
        " so this is dialogue.",
        "monologue": "Step 3: A single person speaks alone on screen, so this is a monologue.",
        "narration": "Step 3: The voice comes from no one on screen,"
        " so this is narration by a voice-over.",
    }[scene_type]
    who = PERSON_WORDS[(gender, age)]
    step4 = (
        f"Step 4: The dubbing should be {scene_type} voiced as {_a(AGE_WORDS[age])} {gender}"
        f" ({who}) sounding {EMOTION_ADJECTIVES[emotion]}."
    )
    return " ".join((step1, step2, step3, step4))


def write_cot(
    people: list[OnScreen],
    scene_type: str,
    gender: str,
    age: str,
    emotion: str,
    scene_emotion: str,
    rng: np.random.Generator,
) -> str:
    """The accepted chain-of-thought answer for one clip."""
    return (
        f"<SUMMARY>{rng.choice(SUMMARIES)}</SUMMARY>"
        f"<CAPTION>{_caption(people, scene_emotion, rng)}</CAPTION>"
        f"<REASONING>{_reasoning(people, scene_type, gender, age, emotion)}</REASONING>"
        f"<CONCLUSION>{format_conclusion(scene_type, gender, age, emotion)}</CONCLUSION>"
    )


def write_rejected(
    people: list[OnScreen],
    scene_type: str,
    gender: str,
    age: str,
    emotion: str,
    scene_emotion: str,
    rng: np.random.Generator,
) -> str:
    """JSON list of rejected answers: wrong count, wrong scene, wrong attribute, broken format."""
    summary = str(rng.choice(SUMMARIES))
    caption = _caption(people, scene_emotion, rng)

    def answer(reasoning: str, conclusion: str) -> str:
        return (
            f"<SUMMARY>{summary}</SUMMARY><CAPTION>{caption}</CAPTION>"
            f"<REASONING>{reasoning}</REASONING><CONCLUSION>{conclusion}</CONCLUSION>"
        )

    wrong_count = int(rng.choice([n for n in range(4) if n != len(people)]))
    wrong_scene = str(rng.choice([s for s in SCENE_TYPES if s != scene_type]))
    attribute = str(rng.choice(("gender", "age", "emotion")))
    attrs = {"gender": gender, "age": age, "emotion": emotion}
    choices = {"gender": GENDERS, "age": AGES, "emotion": EMOTIONS}[attribute]
    attrs[attribute] = str(rng.choice([v for v in choices if v != attrs[attribute]]))
    good = answer(
        _reasoning(people, scene_type, gender, age, emotion),
        format_conclusion(scene_type, gender, age, emotion),
    )
    broken = str(
        rng.choice(
            (
                good.replace("</REASONING>", "", 1),  # unclosed tag
                good.replace("<SUMMARY>", "<CAPTION>", 1),  # tags out of order
                good.split("<CONCLUSION>")[0],  # no conclusion
                good.replace("scene_type=", "scene=", 1),  # unreadable conclusion
            )
        )
    )
    rejected = [
        {
            "kind": "wrong_count",
            "text": answer(
                _reasoning(people, scene_type, gender, age, emotion, count_override=wrong_count),
                format_conclusion(scene_type, gender, age, emotion),
            ),
        },
        {
            "kind": "wrong_scene",
            "text": answer(
                _reasoning(people, wrong_scene, gender, age, emotion),
                format_conclusion(wrong_scene, gender, age, emotion),
            ),
        },
        {
            "kind": "wrong_attribute",
            "text": answer(
                _reasoning(people, scene_type, attrs["gender"], attrs["age"], attrs["emotion"]),
                format_conclusion(scene_type, attrs["gender"], attrs["age"], attrs["emotion"]),
            ),
        },
        {"kind": "broken_format", "text": broken},
    ]
    return json.dumps(rejected)
