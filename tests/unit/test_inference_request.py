"""DubRequest: every field's bad value names the field and the fix; allowed roots; layering."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from dubops.errors import InputError
from dubops.inference import DubRequest
from dubops.inference.request import check_allowed_roots


@pytest.fixture()
def files(tmp_path):
    video, prompt = tmp_path / "clip.mp4", tmp_path / "voice.wav"
    video.write_bytes(b"not checked until read")
    prompt.write_bytes(b"RIFF")
    return {"video": video, "prompt": prompt, "script": "Where are the keys?"}


def test_a_good_request_keeps_its_values(files):
    request = DubRequest(**files, emotion="joy", seed=3, nfe=8, target_seconds=2.5)
    assert request.name == "clip" and request.overrides() == {"emotion": "joy"}
    assert request.paths() == {"video": files["video"], "prompt": files["prompt"]}
    frames = DubRequest(
        video=np.zeros((5, 8, 8, 3), np.uint8),
        fps=25,
        script="Hi there.",
        prompt=np.zeros(2400, np.float32),
        prompt_rate=24_000,
    )
    assert frames.paths() == {} and frames.name == "clip"


BAD = [
    ({"video": "/nowhere/clip.mp4"}, "video", "existing path"),
    ({"video": b""}, "video", "send the whole file"),
    ({"video": np.zeros((5, 8, 8), np.uint8), "fps": 25}, "video", "(frames, height, width, 3)"),
    ({"video": np.zeros((5, 8, 8, 3), np.float32), "fps": 25}, "video", "uint8"),
    ({"video": np.zeros((5, 8, 8, 3), np.uint8)}, "fps", "give fps"),
    ({"video": 42}, "video", "mp4's bytes"),
    ({"fps": -1.0, "video": np.zeros((5, 8, 8, 3), np.uint8)}, "fps", "positive number"),
    ({"script": "   "}, "script", "it is empty"),
    ({"script": 7}, "script", "as text"),
    ({"prompt": "/nowhere/voice.wav"}, "prompt", "existing path"),
    ({"prompt": b""}, "prompt", "send the whole file"),
    ({"prompt": np.zeros((2, 10), np.float32), "prompt_rate": 24_000}, "prompt", "1-D"),
    ({"prompt": np.zeros(10, np.float32)}, "prompt_rate", "give prompt_rate"),
    ({"prompt_rate": 0}, "prompt_rate", "rate in Hz"),
    ({"react": ["a"]}, "react", "preceding line"),
    ({"clip_id": 3.5}, "clip_id", "as text"),
    ({"speaker_id": {"a": 1}}, "speaker_id", "as text"),
    ({"scene_type": "musical"}, "scene_type", "pick one"),
    ({"gender": "robot"}, "gender", "pick one"),
    ({"age": "ancient"}, "age", "pick one"),
    ({"emotion": "bored"}, "emotion", "pick one"),
    ({"target_seconds": 0}, "target_seconds", "above 0"),
    ({"target_seconds": 1e6}, "target_seconds", "at most"),
    ({"seed": -1}, "seed", "0 or more"),
    ({"seed": "x"}, "seed", "whole number"),
    ({"nfe": 0}, "nfe", "sampler steps"),
    ({"nfe": 10_000}, "nfe", "sampler steps"),
    ({"mp4": "maybe"}, "mp4", "true or false"),
    ({"oracle_footage": True}, "oracle_footage", "needs clip_id"),
    ({"voice": "x"}, "voice", "Extra inputs"),
]


@pytest.mark.parametrize(
    ("change", "field", "fix"), BAD, ids=[f"{b[1]}-{i}" for i, b in enumerate(BAD)]
)
def test_each_bad_field_is_named_with_its_fix(files, change, field, fix):
    with pytest.raises(InputError) as caught:
        DubRequest(**{**files, **change})
    message = str(caught.value)
    assert message.startswith("DubRequest: ") and f"{field}:" in message and fix in message
    assert "pydantic" not in message and "Traceback" not in message


def test_every_field_has_a_bad_value_tested():
    tested = {field for _, field, _ in BAD} - {"voice"}
    assert set(DubRequest.model_fields) <= tested


def test_paths_outside_the_allowed_roots_are_refused(files, tmp_path):
    request = DubRequest(**files)
    check_allowed_roots(request, [tmp_path])
    with pytest.raises(InputError, match="outside the allowed folders"):
        check_allowed_roots(request, [tmp_path / "elsewhere"])
    with pytest.raises(InputError, match="send the file's bytes"):
        check_allowed_roots(request, [])
    # A symlink inside an allowed root that points out of it is still outside.
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "link.mp4").symlink_to(files["video"])
    linked = DubRequest(**{**files, "video": tmp_path / "root" / "link.mp4"})
    with pytest.raises(InputError, match="video: "):
        check_allowed_roots(linked, [tmp_path / "root", files["prompt"].parent / "none"])
    bytes_only = DubRequest(video=b"mp4", script="Hi.", prompt=b"wav")
    check_allowed_roots(bytes_only, [])


def test_importing_inference_loads_no_training_orchestration_or_validation():
    code = (
        "import sys, dubops.inference, dubops.inference.loading, dubops.inference.corpus;"
        "bad = sorted(m for m in sys.modules if m.startswith(('dubops.speech.stages',"
        "'dubops.pipelines', 'dubops.components', 'trl', 'great_expectations',"
        "'dubops.speech.trainer', 'dubops.reasoning.sft', 'dubops.reasoning.mpo')));"
        "print(bad); assert not bad, bad"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_loading_a_model_loads_no_training_module(tmp_path):
    """Through loading too: the speech model and the reasoner come without their trainers."""
    code = (
        "import sys;"
        "from dubops.speech.loading import load_dubbing_model;"
        "from dubops.speech.generator import SpeechGenerator;"
        "from dubops.reasoning.inference import Reasoner;"
        "import dubops.reasoning.model, dubops.emotion.conditioner, dubops.emotion.footage_vectors;"
        "import dubops.feature_store.retrieval;"
        "bad = sorted(m for m in sys.modules if m.startswith(('dubops.speech.stages',"
        "'dubops.speech.trainer', 'dubops.pipelines', 'dubops.components', 'trl',"
        "'great_expectations')));"
        "print(bad); assert not bad, bad"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
