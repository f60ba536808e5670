"""What a caller asks to dub: :class:`DubRequest`, validated field by field.

One request is one clip: the silent video (a path, the file's bytes, or frames
with their rate), the script, the timbre prompt (a path, bytes, or samples with
their rate), the preceding line, and optional overrides of what the model would
otherwise decide itself (the four conclusion fields, the slot length, the seed,
the sampler's steps). A bad value raises :class:`dubops.errors.InputError`
naming the field and the fix, never pydantic's traceback: the CLI, the pyfunc
and the servers all show that message to their users as it is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from dubops.data.schema import AGES, EMOTIONS, GENDERS, SCENE_TYPES
from dubops.errors import InputError

CONCLUSION_FIELDS = {
    "scene_type": SCENE_TYPES,
    "gender": GENDERS,
    "age": AGES,
    "emotion": EMOTIONS,
}
MAX_TARGET_SECONDS = 120.0
MAX_NFE = 256

# What to do about a value of the wrong type (pydantic's own message says what is wrong).
_FIXES = {
    "video": "give a video file path, the mp4's bytes, or a (frames, h, w, 3) uint8 array",
    "prompt": "give a wav file path, the wav's bytes, or a 1-D float array with prompt_rate",
    "script": "give the line as text",
    "react": "give the preceding line as text, or leave it out",
    "fps": "give the frames' rate as a positive number (e.g. 25)",
    "prompt_rate": "give the prompt samples' rate in Hz (e.g. 24000)",
    "seed": "give a whole number, 0 or more",
    "nfe": f"give a whole number of sampler steps from 1 to {MAX_NFE}",
    "target_seconds": f"give the slot in seconds, above 0 and at most {MAX_TARGET_SECONDS:g}",
    "clip_id": "give the clip's name as text",
    "speaker_id": "give the speaker's name as text",
    "mp4": "give true or false",
    "oracle_footage": "give true or false",
}


class DubRequest(BaseModel):
    """One clip to dub; construct it with keywords (errors are :class:`InputError`)."""

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid", frozen=True)

    video: Path | bytes | np.ndarray = Field(description="mp4 path, mp4 bytes or RGB frames")
    script: str = Field(description="the line the clip's speaker says")
    prompt: Path | bytes | np.ndarray = Field(description="timbre prompt: wav path, bytes, samples")
    fps: float | None = Field(None, gt=0, description="frames' rate when video is an array")
    prompt_rate: int | None = Field(None, gt=0, description="samples' rate when prompt is an array")
    react: str = Field("", description="the preceding line (the text-react emotion cue)")
    clip_id: str | None = Field(None, description="name; library footage of this id is excluded")
    speaker_id: str | None = Field(None, description="who speaks (kept in the result and logs)")
    scene_type: str | None = Field(None, description="override the reasoner's scene type")
    gender: str | None = Field(None, description="override the reasoner's gender")
    age: str | None = Field(None, description="override the reasoner's age")
    emotion: str | None = Field(None, description="override the reasoner's emotion")
    target_seconds: float | None = Field(
        None, gt=0, le=MAX_TARGET_SECONDS, description="speech length (default: the video's)"
    )
    seed: int = Field(0, ge=0, description="the sampler's noise seed")
    nfe: int | None = Field(None, ge=1, le=MAX_NFE, description="sampler steps override")
    mp4: bool = Field(False, description="also return the video muxed with the dub")
    oracle_footage: bool = Field(
        False, description="evaluation only: the library's stored vectors of clip_id as query"
    )

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise InputError(describe_errors(exc)) from None

    @field_validator("script")
    @classmethod
    def _script_said(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("it is empty; give the line the clip's speaker says")
        return value.strip()

    @field_validator("video", "prompt", mode="after")
    @classmethod
    def _media(cls, value: Any, info: Any) -> Any:
        name = info.field_name
        if isinstance(value, bytes) and not value:
            raise ValueError("the bytes are empty; send the whole file")
        if isinstance(value, Path) and not value.is_file():
            raise ValueError(f"{value} is not a file; give an existing path")
        if isinstance(value, np.ndarray):
            if name == "video" and (value.ndim != 4 or value.shape[-1] != 3 or not len(value)):
                raise ValueError(
                    f"frames must be (frames, height, width, 3) RGB, got {value.shape}"
                )
            if name == "video" and value.dtype != np.uint8:
                raise ValueError(f"frames must be uint8 RGB, got {value.dtype}")
            if name == "prompt" and (value.ndim != 1 or not len(value)):
                raise ValueError(f"samples must be a non-empty 1-D array, got {value.shape}")
        return value

    @field_validator("scene_type", "gender", "age", "emotion")
    @classmethod
    def _label(cls, value: str | None, info: Any) -> str | None:
        options = CONCLUSION_FIELDS[info.field_name]
        if value is not None and value not in options:
            raise ValueError(f"{value!r} is not one of {list(options)}; pick one or leave it out")
        return value

    @model_validator(mode="after")
    def _rates(self) -> DubRequest:
        if isinstance(self.video, np.ndarray) and self.fps is None:
            raise ValueError("fps: frames need their rate; give fps (e.g. 25)")
        if isinstance(self.prompt, np.ndarray) and self.prompt_rate is None:
            raise ValueError("prompt_rate: samples need their rate; give prompt_rate (e.g. 24000)")
        if self.oracle_footage and not self.clip_id:
            raise ValueError(
                "oracle_footage: needs clip_id (a clip whose vectors the library holds)"
            )
        return self

    @property
    def name(self) -> str:
        """The clip's name in logs and results: its id, else the video file's stem."""
        if self.clip_id:
            return self.clip_id
        return self.video.stem if isinstance(self.video, Path) else "clip"

    def overrides(self) -> dict[str, str]:
        """The conclusion fields the caller set."""
        return {f: getattr(self, f) for f in CONCLUSION_FIELDS if getattr(self, f) is not None}

    def paths(self) -> dict[str, Path]:
        """The request's media given as paths (what an allowed-roots check looks at)."""
        return {
            n: v for n, v in (("video", self.video), ("prompt", self.prompt)) if isinstance(v, Path)
        }


def describe_errors(exc: ValidationError) -> str:
    """pydantic's errors as one line per field, each with what to do."""
    lines = []
    for error in exc.errors():
        field = ".".join(str(p) for p in error["loc"] if not isinstance(p, int)) or "request"
        field = field.split(".")[0]
        message = str(error["msg"]).removeprefix("Value error, ")
        fix = _FIXES.get(field, "")
        if field == "request":
            lines.append(message)  # a check across fields names its field itself
        elif error["type"] in ("value_error", "assertion_error") or not fix:
            lines.append(f"{field}: {message}")
        else:
            lines.append(f"{field}: {message}; {fix}")
    return "DubRequest: " + "; ".join(dict.fromkeys(lines))


def check_allowed_roots(request: DubRequest, roots: list[Path]) -> None:
    """Refuse media paths outside ``roots`` (a server reads only where it was told it may)."""
    for name, path in request.paths().items():
        check_under_roots(name, path, roots)


def check_under_roots(name: str, path: Path, roots: list[Path], shown: str | None = None) -> None:
    """Refuse ``path`` (``shown`` in the message) unless it resolves inside one of ``roots``."""
    resolved = [Path(r).resolve() for r in roots]
    real = path.resolve()
    if not any(real == r or r in real.parents for r in resolved):
        allowed = ", ".join(str(r) for r in resolved) or "none: send the file's bytes"
        raise InputError(
            f"{name}: {shown or path} is outside the allowed folders ({allowed}); send the "
            "file's bytes (base64) or a path under one of them"
        )
