"""The instruction the reasoner reads, and the training rows built from the corpus.

One prompt for every model: the image placeholders, the instruction (the
paper's four steps in one sentence) and the script. Completions end with the
tokenizer's end-of-sequence token, which TRL does not add for
prompt/completion data with images.
"""

from __future__ import annotations

INSTRUCTION = (
    "Watch the silent clip (key frames, then a motion image where moving mouths glow) and read"
    " its script. Answer in four tags: SUMMARY, CAPTION, REASONING (count the people, tell who"
    " is talking, decide dialogue, monologue or narration, then the voice), CONCLUSION"
    " (scene_type, gender, age, emotion)."
)


def build_prompt(script: str, image_token: str, images: int) -> str:
    """Image placeholders, instruction and script, ending where the answer starts."""
    script = " ".join(script.split())
    return f"{image_token * images}\n{INSTRUCTION}\nScript: {script}\nAnswer: "
