"""Scene jobs: a long video, its subtitles and a voice per speaker, dubbed as one job.

``POST /jobs`` with a ``subtitles`` field is a scene job. The fields:

* the video as for a clip: a multipart file ``video``, ``video_b64`` or ``video_uri``;
* ``subtitles``: the SRT or JSON text (a multipart file or a string), or
  ``subtitles_uri`` (a file under the allowed roots), and ``subtitles_format`` (``srt``
  or ``json``; guessed from the text when left out);
* the voices: multipart files ``voice_<SPEAKER>``, or in JSON ``voices``
  (``{"SPEAKER": "<wav base64>"}``) and ``voice_uris`` (``{"SPEAKER": "/path.wav"}``
  under the allowed roots);
* optional ``seed`` and ``changes`` (``{"3": {"emotion": "anger"}}``: per line).

Everything is checked when the job is submitted (400 naming the line or the
voice), so a queued job holds only inputs that can be dubbed. The job runs
:func:`dubops.scenes.scene_dubbing.dub_scene` with the service's loaded pipeline
and one line cache for the whole server (``<state_dir>/segments``), so a re-dub
job (``POST /jobs/{id}/segments/{n}``: the parent's inputs plus one line's
changes) dubs only that line. Its result lists the lines with their reasoning,
conclusion, footage, timings and a wav each, plus the mp4, the track and the
original video as artifacts.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dubops.errors import InputError

if TYPE_CHECKING:
    from dubops.scenes.segments import Segment
    from dubops.serving.core import DubbingService
    from dubops.serving.jobs import Job

VOICE_PREFIX = "voice_"
_SCENE_FIELDS = {
    "video", "video_b64", "video_uri", "video_path", "subtitles", "subtitles_uri",
    "subtitles_format", "voices", "voice_uris", "seed", "changes",
}  # fmt: skip
CHANGE_FIELDS = ("text", "speaker", "seed", "scene_type", "gender", "age", "emotion")


def is_scene(fields: Mapping[str, Any]) -> bool:
    return "subtitles" in fields or "subtitles_uri" in fields


def example_scenes(roots: list[Path]) -> list[dict[str, Any]]:
    """Scenes ``dubops data scene`` wrote under the allowed folders (a root itself or one
    folder down), as the fields of a scene job: what the review page offers to pick."""
    found = []
    for root in roots:
        for srt in sorted([*root.glob("scene.srt"), *root.glob("*/scene.srt")]):
            folder = srt.parent
            voices = sorted((folder / "voices").glob("*.wav"))
            if (folder / "scene.mp4").is_file() and voices:
                found.append(
                    {
                        "name": folder.name,
                        "video_uri": str(folder / "scene.mp4"),
                        "subtitles_uri": str(srt),
                        "voice_uris": {p.stem: str(p) for p in voices},
                    }
                )
    return found


def scene_job_request(service: DubbingService, fields: Mapping[str, Any]) -> dict[str, Any]:
    """Check a scene job's fields and keep its media; what the job table stores."""
    from dubops.serving import wire

    unknown = sorted(k for k in fields if k not in _SCENE_FIELDS and not k.startswith(VOICE_PREFIX))
    if unknown:
        raise InputError(
            f"{unknown[0]}: unknown field of a scene job; the fields are {sorted(_SCENE_FIELDS)} "
            f"and {VOICE_PREFIX}<SPEAKER> files"
        )
    max_bytes = int(service.settings.max_upload_mb * 2**20)
    video = wire.media_from_fields("video", fields, service.roots, max_bytes)
    if fields.get("subtitles_uri"):
        path = wire.path_under_roots("subtitles_uri", str(fields["subtitles_uri"]), service.roots)
        text = _text("subtitles_uri", path.read_bytes())
        kind = _format(fields.get("subtitles_format") or path.suffix.lstrip("."), text)
    else:
        text = _text("subtitles", fields.get("subtitles"))
        kind = _format(fields.get("subtitles_format"), text)
    voices = {
        name: str(_kept(service, data))
        for name, data in _voices(fields, service, max_bytes).items()
    }
    stored = {
        "kind": "scene",
        "video": str(_kept(service, video)),
        "subtitles": str(_kept(service, text.encode("utf-8"))),
        "subtitles_format": kind,
        "voices": voices,
        "seed": _seed(fields.get("seed")),
        "changes": _changes(fields.get("changes")),
    }
    check_scene(stored)
    return stored


def redub_request(parent: Mapping[str, Any], number: int, changes: Mapping[str, Any]) -> dict:
    """A scene job's stored request with one more line's changes (a re-dub job)."""
    if parent.get("kind") != "scene":
        raise InputError("job: not a scene job; only a scene's lines can be re-dubbed")
    if not changes:
        raise InputError(f"body: no changes; give any of {list(CHANGE_FIELDS)}")
    merged = {k: dict(v) for k, v in parent.get("changes", {}).items()}
    line = merged.setdefault(str(number), {})
    line.update(_changes({str(number): changes})[str(number)])
    request = dict(parent) | {"changes": merged}
    check_scene(request)
    return request


def check_scene(stored: Mapping[str, Any]) -> list[Segment]:
    """The stored request's lines with their changes, checked against the video and voices."""
    from dubops.scenes.segments import check_segments
    from dubops.video import probe_video

    lines = _changed_lines(stored)
    try:
        seconds = probe_video(stored["video"]).seconds
    except ValueError as exc:
        raise InputError(f"video: not a readable video ({exc}); send an mp4") from None
    check_segments(lines, seconds, stored["voices"], name="subtitles")
    return lines


def run_scene_job(
    service: DubbingService,
    job: Job,
    report: Callable[[str, float], None],
    progress: dict[int, str],
) -> dict[str, Any]:
    """Dub the job's scene with the service's pipeline; its result with artifact ids."""
    from dubops.audio import wav_bytes
    from dubops.inference.mux import mux_dub
    from dubops.scenes.scene_dubbing import dub_scene
    from dubops.scenes.segment_cache import SegmentCache

    stored = job.request
    # Checked at submission; dub_scene checks the lines again against the frames it
    # decodes, so the video is not probed a second time here.
    lines = _changed_lines(stored)
    total = len(lines)
    progress.update({s.number: "queued" for s in lines})

    def on_line(number: int, state: str) -> None:
        progress[number] = state
        done = sum(v in ("cached", "done") for v in progress.values())
        report(f"line {number} of {total}: {state}", done / (total + 1))

    voices = {name: Path(path) for name, path in stored["voices"].items()}
    video = Path(stored["video"])
    scene = dub_scene(
        service.pipeline, video, lines, voices, SegmentCache(service.state_dir / "segments"),
        service.model_id, int(stored["seed"]), service.settings.max_batch_size, on_line,
        service.observe,
    )  # fmt: skip
    report("mux", total / (total + 1))
    store = service.artifacts
    with tempfile.TemporaryDirectory(prefix="dubops-scene-") as tmp:
        mp4 = mux_dub(video, scene.track, scene.sample_rate, Path(tmp) / "dub.mp4")
        artifacts = {
            "mp4": store.put(mp4.read_bytes(), "mp4"),
            "wav": store.put(wav_bytes(scene.track, scene.sample_rate), "wav"),
            "video": store.put(video.read_bytes(), "mp4"),
        }
    result = scene.to_json() | {"artifacts": artifacts, "model_version": service.model_version}
    for line, data in zip(scene.lines, result["segments"], strict=True):
        data["artifacts"] = {"wav": store.put(wav_bytes(line.wave, scene.sample_rate), "wav")}
    result["changes"] = stored.get("changes", {})
    return result


def _changed_lines(stored: Mapping[str, Any]) -> list[Segment]:
    """The stored subtitles' lines with the job's per-line changes applied."""
    from dubops.scenes.segments import with_changes

    return with_changes(_lines(stored), {int(k): v for k, v in stored["changes"].items()})


def _lines(stored: Mapping[str, Any]) -> list[Segment]:
    from dubops.scenes.segments import in_time_order, parse_json_segments, parse_srt

    text = Path(stored["subtitles"]).read_text(encoding="utf-8")
    parse = parse_json_segments if stored["subtitles_format"] == "json" else parse_srt
    return in_time_order(parse(text, "subtitles"), "subtitles")


def _voices(fields: Mapping[str, Any], service: DubbingService, max_bytes: int) -> dict:
    from dubops.serving import wire

    found: dict[str, bytes | Path] = {}
    for key, value in fields.items():
        if key.startswith(VOICE_PREFIX) and key not in ("voice_uris",):
            found[key.removeprefix(VOICE_PREFIX)] = _voice_bytes(key, value)
    for name, value in _mapping("voices", fields.get("voices")).items():
        found[name] = _voice_bytes(f"voices.{name}", value)
    for name, uri in _mapping("voice_uris", fields.get("voice_uris")).items():
        found[name] = wire.path_under_roots(f"voice_uris.{name}", str(uri), service.roots)
    if not found:
        raise InputError(
            f"voices: none given; send a wav per speaker ({VOICE_PREFIX}<SPEAKER> files, "
            "or voices / voice_uris in JSON)"
        )
    for name, data in found.items():
        if isinstance(data, bytes) and len(data) > max_bytes:
            raise wire.PayloadTooLargeError(f"voice {name}: over the upload limit")
    return found


def _voice_bytes(name: str, value: Any) -> bytes:
    from dubops.serving import wire

    if isinstance(value, Mapping) and "b64" in value:
        value = value["b64"]
    data = value if isinstance(value, bytes) else wire.decode_base64(name, value)
    try:
        wire.check_magic("prompt", data)
    except InputError as exc:
        raise type(exc)(f"{name}: {str(exc).split(': ', 1)[1]}") from None
    return data


def _kept(service: DubbingService, media: bytes | Path) -> Path:
    return media if isinstance(media, Path) else service.keep_upload(media)


def _text(name: str, value: Any) -> str:
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise InputError(f"{name}: not UTF-8 text; save the file as UTF-8") from None
    if not isinstance(value, str) or not value.strip():
        raise InputError(f"{name}: empty; send the SRT or JSON subtitles")
    return value


def _format(given: Any, text: str) -> str:
    if given in (None, "", b""):
        return "json" if text.lstrip()[:1] in ("[", "{") else "srt"
    kind = _text("subtitles_format", given).strip().lower()
    if kind not in ("srt", "json"):
        raise InputError(f"subtitles_format: {kind!r}; give srt or json")
    return kind


def _seed(value: Any) -> int:
    if value in (None, "", b""):
        return 0
    text = value.decode() if isinstance(value, bytes) else value
    try:
        seed = int(text)
    except (TypeError, ValueError):
        raise InputError(f"seed: {value!r}; give a whole number, 0 or more") from None
    if seed < 0:
        raise InputError(f"seed: {seed}; give a whole number, 0 or more")
    return seed


def _changes(value: Any) -> dict[str, dict[str, str]]:
    """``{"N": {field: value}}`` from JSON (or a multipart JSON text), values as text."""
    changes = _mapping("changes", value)
    checked: dict[str, dict[str, str]] = {}
    for number, fields in changes.items():
        if not str(number).isdigit():
            raise InputError(f"changes: {number!r} is not a line number (1, 2, ...)")
        unknown = sorted(set(_mapping(f"changes.{number}", fields)) - set(CHANGE_FIELDS))
        if unknown:
            raise InputError(
                f"changes.{number}.{unknown[0]}: unknown field; change any of {list(CHANGE_FIELDS)}"
            )
        checked[str(int(number))] = {k: str(v) for k, v in fields.items() if v not in (None, "")}
    return checked


def _mapping(name: str, value: Any) -> dict[str, Any]:
    if value in (None, "", b""):
        return {}
    if isinstance(value, bytes | str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise InputError(f"{name}: not JSON; give a JSON object") from None
    if not isinstance(value, Mapping):
        raise InputError(f"{name}: expected an object, got {type(value).__name__}")
    return dict(value)
