"""Input checks every command runs before it imports a model or opens a store.

A dub that loads a model for 30 s and then finds the video missing wastes the
user's time; these checks take milliseconds (file headers, one decoded frame)
and raise :class:`~dubops.errors.InputError` with the option's name and the fix.
The models check again: these only make the common mistakes fail fast.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from dubops.errors import InputError
from dubops.inference.media import (
    MAX_LETTERS_PER_SECOND,
    MIN_PROMPT_RMS_DBFS,
    MIN_PROMPT_SAMPLE_RATE,
    MIN_PROMPT_SECONDS,
)

# One dubbed line: the DiT samples the whole slot at once (time grows with its
# square), and longer videos go through the job API in segments.
MAX_SLOT_SECONDS = 60.0
# Far more than any line of dialogue; bounds tokenizer and phonemizer work.
MAX_SCRIPT_CHARS = 1000


def input_file(path: Path, option: str, what: str = "file") -> Path:
    """An existing, readable file (not a folder)."""
    if not path.exists():
        raise InputError(f"{option} {path}: no such {what}; check the path")
    if path.is_dir():
        raise InputError(f"{option} {path}: is a folder; give the {what} itself")
    try:
        with path.open("rb") as handle:
            handle.read(1)
    except OSError as exc:
        raise InputError(f"{option} {path}: cannot be read ({exc.strerror})") from None
    return path


def input_dir(path: Path, option: str, needs: str | None = None, hint: str = "") -> Path:
    """An existing folder, holding ``needs`` when given (e.g. ``manifest.parquet``)."""
    if not path.exists():
        raise InputError(f"{option} {path}: no such folder{'; ' + hint if hint else ''}")
    if not path.is_dir():
        raise InputError(f"{option} {path}: is a file, not a folder")
    if needs is not None and not (path / needs).is_file():
        raise InputError(f"{option} {path}: holds no {needs}{'; ' + hint if hint else ''}")
    if not os.access(path, os.R_OK | os.X_OK):
        raise InputError(f"{option} {path}: cannot be read (permission denied)")
    return path


def corpus_dir(path: Path, option: str = "--data") -> Path:
    """A corpus folder: one with ``manifest.parquet``."""
    return input_dir(
        path, option, "manifest.parquet", "make one with `dubops data synth --out DIR`"
    )


def output_file(path: Path, option: str = "--out", suffix: str | None = None) -> Path:
    """A file path that can be written: not a folder, not under a file, writable."""
    if path.is_dir():
        raise InputError(
            f"{option} {path}: is a folder; give a file name, e.g. {path}/out{suffix or ''}"
        )
    if suffix is not None and path.suffix.lower() != suffix:
        raise InputError(f"{option} {path}: must end in {suffix}")
    _writable_parent(path, option)
    return path


def output_dir(path: Path, option: str = "--out") -> Path:
    """A folder path that can be created or written into."""
    if path.exists() and not path.is_dir():
        raise InputError(f"{option} {path}: is a file; give a folder")
    if path.is_dir():
        _probe_write(path, option, path)
    else:
        _writable_parent(path, option)
    return path


def _writable_parent(path: Path, option: str) -> None:
    """Walk up to the nearest existing folder; it must be a folder and take a new file."""
    ancestor = path.absolute().parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise InputError(
            f"{option} {path}: {ancestor} is a file, so nothing can be written under it"
        )
    _probe_write(ancestor, option, path)


def _probe_write(folder: Path, option: str, path: Path) -> None:
    # os.access says yes to root even on read-only mounts: try a real file.
    try:
        fd, probe = tempfile.mkstemp(prefix=".dubops-probe-", dir=folder)
    except OSError as exc:
        raise InputError(
            f"{option} {path}: cannot write in {folder} ({exc.strerror}); choose another path"
        ) from None
    os.close(fd)
    os.unlink(probe)


def script_text(text: str, option: str = "--script") -> str:
    """A speakable line: valid UTF-8, some letters or digits, at most MAX_SCRIPT_CHARS."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        # argv bytes that are not UTF-8 arrive as lone surrogates.
        raise InputError(
            f"{option}: byte {exc.start} is not valid UTF-8; save or pass the line as UTF-8"
        ) from None
    if not any(c.isalnum() for c in text):
        raise InputError(f"{option}: the script is empty; give the line to speak")
    if len(text) > MAX_SCRIPT_CHARS:
        raise InputError(
            f"{option}: {len(text)} characters is longer than one line of dialogue "
            f"(at most {MAX_SCRIPT_CHARS}); split it and dub each line against its own clip"
        )
    return text


def script_file(path: Path, option: str = "--script-file") -> str:
    """The script read from a UTF-8 text file."""
    data = input_file(path, option, "script file").read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{option} {path}: byte {exc.start} is not valid UTF-8; re-save the file as UTF-8"
        ) from None
    return script_text(text.strip(), option)


def script_fits(text: str, seconds: float, option: str = "--script") -> None:
    """Refuse a script that no speaker could say in ``seconds`` (fast estimate)."""
    letters = sum(c.isalnum() for c in text)
    limit = int(MAX_LETTERS_PER_SECOND * seconds)
    if letters > limit:
        raise InputError(
            f"{option}: {letters} letters cannot be spoken in the {seconds:.2f} s video "
            f"(at most ~{limit}); shorten the script or give a longer video"
        )


def slot_seconds(seconds: float, option: str = "--seconds") -> float:
    """A target duration within (0, MAX_SLOT_SECONDS]."""
    if not seconds > 0:
        raise InputError(f"{option} {seconds:g}: a duration must be positive")
    if seconds > MAX_SLOT_SECONDS:
        raise InputError(
            f"{option} {seconds:g}: one dubbed line is at most {MAX_SLOT_SECONDS:g} s; "
            "dub longer videos line by line"
        )
    return seconds


def video_file(path: Path, option: str = "--video") -> float:
    """A decodable video with a frame rate; returns its length in seconds."""
    import av

    input_file(path, option, "video")
    try:
        with av.open(str(path), mode="r") as container:
            if not container.streams.video:
                raise InputError(f"{option} {path}: has no video stream; give an mp4 clip")
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate
            if stream.duration is not None and stream.time_base is not None:
                seconds = float(stream.duration * stream.time_base)
            else:
                seconds = (container.duration or 0) / av.time_base
            next(container.decode(stream))
    except (av.FFmpegError, StopIteration, UnicodeDecodeError) as exc:
        reason = "no decodable frame" if isinstance(exc, StopIteration) else str(exc)
        raise InputError(f"{option} {path}: not a readable video ({reason})") from None
    if not rate:
        raise InputError(f"{option} {path}: the video has no frame rate")
    if seconds <= 0:
        raise InputError(f"{option} {path}: the video has no length")
    slot_seconds(seconds, option)
    return seconds


def prompt_wav(path: Path, option: str = "--prompt") -> None:
    """A timbre prompt: a readable wav, wideband, long enough, not silent."""
    import numpy as np
    import soundfile as sf

    input_file(path, option, "wav")
    try:
        info = sf.info(str(path))
    except Exception as exc:  # soundfile raises its own LibsndfileError
        raise InputError(f"{option} {path}: not a readable audio file ({exc})") from None
    if info.samplerate < MIN_PROMPT_SAMPLE_RATE:
        raise InputError(
            f"{option} {path}: {info.samplerate} Hz is too narrowband for a voice prompt; "
            f"record or export it at {MIN_PROMPT_SAMPLE_RATE} Hz or more (24000 is native)"
        )
    seconds = info.frames / info.samplerate
    if seconds < MIN_PROMPT_SECONDS:
        raise InputError(
            f"{option} {path}: {seconds:.2f} s is too short; the voice prompt needs at least "
            f"{MIN_PROMPT_SECONDS} s of the target speaker (3-10 s works best)"
        )
    wave, _ = sf.read(str(path), dtype="float32", always_2d=True, frames=info.samplerate * 30)
    rms = float(np.sqrt(np.mean(np.square(wave.mean(axis=1)), dtype=np.float64)))
    level = 20 * np.log10(max(rms, 1e-12))
    if not np.isfinite(wave).all() or level < MIN_PROMPT_RMS_DBFS:
        raise InputError(
            f"{option} {path}: the prompt is silent or nearly so ({level:.0f} dBFS RMS); "
            "give a recording of the target voice speaking"
        )


def wav_rate(path: Path, rate: int, option: str) -> None:
    """A wav at exactly ``rate`` Hz (scores compare against references at that rate)."""
    import soundfile as sf

    try:
        info = sf.info(str(path))
    except Exception as exc:  # soundfile raises its own LibsndfileError
        raise InputError(f"{option} {path}: not a readable audio file ({exc})") from None
    if info.samplerate != rate:
        raise InputError(
            f"{option} {path}: {info.samplerate} Hz, but scores are computed at {rate} Hz; "
            f"resample the predictions to {rate} Hz (or set audio.sample_rate to match)"
        )


@contextlib.contextmanager
def staged_output(out: Path) -> Iterator[Path]:
    """Yield a path in a hidden temp folder; move what was written beside it to ``out``.

    Commands that write ``out`` and siblings (``out.wav``, ``out.json``) write
    them into the temp folder; only when the block succeeds are the parent
    folders made and the files renamed into place. On failure the temp folder
    goes and nothing new is left at ``out`` or above it.
    """
    import shutil

    ancestor = out.absolute().parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=ancestor))
    try:
        yield staging / out.name
        out.parent.mkdir(parents=True, exist_ok=True)
        for item in sorted(staging.iterdir()):
            os.replace(item, out.parent / item.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
