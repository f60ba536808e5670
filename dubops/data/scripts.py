"""Scripts and react lines for the synthetic corpus.

Sentences come from templates over a small vocabulary of common English words
(all in PocketSphinx's dictionary, so a corpus grammar can be built). In most
scripts the emotion words agree with the clip's emotion label; in the rest
they are drawn from another emotion or from neutral words, so text alone is a
strong but imperfect cue (the issue's requirement). The react line is the
preceding line of the scene, Authentic-Dubber's text-react input.
"""

from __future__ import annotations

import numpy as np

from dubops.data.schema import EMOTIONS

# Emotion-bearing words: (adjective/feeling, exclamation-ish phrase opener).
EMOTION_WORDS: dict[str, dict[str, tuple[str, ...]]] = {
    "anger": {
        "feel": ("angry", "furious", "mad", "sick of this"),
        "open": ("stop it", "enough", "how dare you", "get out"),
        "thing": ("the broken door", "your stupid lies", "that terrible noise"),
    },
    "disgust": {
        "feel": ("disgusted", "sick", "gross"),
        "open": ("yuck", "ugh", "that is nasty", "how awful"),
        "thing": ("the rotten food", "that dirty water", "the smelly trash"),
    },
    "fear": {
        "feel": ("afraid", "scared", "terrified", "nervous"),
        "open": ("help me", "watch out", "run", "please no"),
        "thing": ("the dark forest", "that strange shadow", "the giant spider"),
    },
    "joy": {
        "feel": ("happy", "glad", "delighted", "so proud"),
        "open": ("hooray", "how wonderful", "we did it", "thank you"),
        "thing": ("the birthday party", "this lovely gift", "the sunny beach"),
    },
    "neutral": {
        "feel": ("fine", "ready", "here"),
        "open": ("okay", "well", "so", "alright"),
        "thing": ("the kitchen table", "the next train", "the blue book"),
    },
    "sadness": {
        "feel": ("sad", "lonely", "sorry", "tired"),
        "open": ("oh no", "I miss you", "it is over", "goodbye"),
        "thing": ("the empty house", "my lost dog", "the cold rain"),
    },
    "surprise": {
        "feel": ("amazed", "shocked", "surprised"),
        "open": ("wow", "really", "no way", "look at that"),
        "thing": ("the huge castle", "this secret door", "the flying ship"),
    },
}

NAMES: tuple[str, ...] = ("Anna", "Tom", "Lily", "Max", "Grandpa", "Mia", "Sam", "Grandma")

SCRIPT_TEMPLATES: tuple[str, ...] = (
    "{open}, I am {feel} about {thing}.",
    "{open}! {name}, look at {thing}.",
    "I feel {feel} when I see {thing}.",
    "{name}, I am so {feel} right now.",
    "{open}, {thing} is still there.",
    "Why is {thing} here, {name}?",
    "{open}, we have to talk about {thing}.",
)

REACT_TEMPLATES: tuple[str, ...] = (
    "Did you see {thing}?",
    "{name} told me about {thing}.",
    "I found {thing} this morning.",
    "{open}, what happened to {thing}?",
    "They say {thing} is gone.",
)


def other_emotion(emotion: str, rng: np.random.Generator) -> str:
    """One of the emotions other than ``emotion``, uniformly: what a misleading cue shows."""
    choices = [e for e in EMOTIONS if e != emotion]
    return str(rng.choice(choices))


def _fill(template: str, emotion: str, rng: np.random.Generator) -> str:
    words = EMOTION_WORDS[emotion]
    text = template.format(
        open=str(rng.choice(words["open"])),
        feel=str(rng.choice(words["feel"])),
        thing=str(rng.choice(words["thing"])),
        name=str(rng.choice(NAMES)),
    )
    return text[0].upper() + text[1:]


def make_script(emotion: str, agreement: float, rng: np.random.Generator) -> tuple[str, bool]:
    """A script for ``emotion``; with probability ``1 - agreement`` its words mislead.

    Returns:
        ``(script, agrees)`` where ``agrees`` says whether the words match the label.
    """
    agrees = bool(rng.random() < agreement)
    word_emotion = emotion if agrees else other_emotion(emotion, rng)
    template = str(rng.choice(SCRIPT_TEMPLATES))
    return _fill(template, word_emotion, rng), agrees


def make_react(emotion: str, agreement: float, rng: np.random.Generator) -> str:
    """The preceding line of the scene, usually hinting at the same emotion."""
    word_emotion = emotion if rng.random() < agreement else other_emotion(emotion, rng)
    return _fill(str(rng.choice(REACT_TEMPLATES)), word_emotion, rng)


def make_prompt_text(rng: np.random.Generator) -> str:
    """A neutral-ish sentence for a timbre prompt."""
    return _fill(str(rng.choice(SCRIPT_TEMPLATES)), "neutral", rng)


def corpus_vocabulary() -> list[str]:
    """Every word a script, react line or prompt can contain (lower case, no punctuation)."""
    import re

    words: set[str] = set()
    chunks: list[str] = list(NAMES) + list(SCRIPT_TEMPLATES) + list(REACT_TEMPLATES)
    for groups in EMOTION_WORDS.values():
        for options in groups.values():
            chunks.extend(options)
    for chunk in chunks:
        chunk = re.sub(r"\{[a-z]+\}", " ", chunk)
        words.update(w for w in re.findall(r"[a-z']+", chunk.lower()) if w)
    return sorted(words)
