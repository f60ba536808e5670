"""The emotion extractors' interface: shapes, unit rows, the text criterion, versions, errors.

Networks are freshly initialised (training is the integration test's job); the
inputs are real: cartoon frames from the corpus renderer, the packaged MiniLM.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from dubops.config import ConfigError, load_config
from dubops.data.cartoon import Character, render_clip
from dubops.emotion.extractors.base import ClipInputs, content_version
from dubops.emotion.footage_vectors import (
    MODALITIES,
    extractor_class,
    extractor_versions,
    load_extractors,
)
from dubops.errors import InputError
from dubops.speech.mouth import character_boxes

SR = 24_000


def _clip(i: int, people: int = 1, seconds: float = 1.0) -> ClipInputs:
    rng = np.random.default_rng(i)
    chars = [Character("female", "adult", "anger", j == 0) for j in range(people)]
    frames = render_clip(chars, "anger", rng.random(12), 96, rng)  # (12, 96, 96, 3)
    t = np.arange(int(seconds * SR)) / SR
    wave = (0.3 * np.sin(2 * np.pi * (120 + 40 * i) * t)).astype(np.float32)
    prompt = (0.2 * np.sin(2 * np.pi * 110 * t[: SR // 2])).astype(np.float32)
    return ClipInputs(
        clip_id=f"c{i}",
        frames=frames,
        script=["I am so angry at you!", "What a lovely day.", "The door is brown."][i % 3],
        react=["Did you break it?", "They laughed a lot.", "It was there."][i % 3],
        wave=wave,
        prompt_wave=prompt,
        sample_rate=SR,
    )


@pytest.fixture(scope="module")
def config():
    return load_config("tiny")


@pytest.fixture(scope="module")
def extractors(config):
    import torch

    torch.manual_seed(0)
    return {
        name: extractor_class(name)(extractor_class(name).settings_from(config))
        for name in MODALITIES
    }


@pytest.fixture(scope="module")
def batch():
    return [_clip(0, 1, 1.0), _clip(1, 3, 1.7), _clip(2, 0, 0.6)]


@pytest.mark.parametrize("name", MODALITIES)
def test_embed_gives_unit_float32_rows(extractors, batch, name):
    extractor = extractors[name]
    z = extractor.embed(batch)
    assert z.dtype == np.float32
    assert z.shape == (len(batch), extractor.dim) == (3, 256)
    np.testing.assert_allclose(np.linalg.norm(z, axis=1), 1.0, atol=1e-5)
    assert np.isfinite(z).all()
    # A batch of one gives the same row as inside a bigger batch (eval mode, no batch stats).
    np.testing.assert_allclose(extractor.embed(batch[1:2])[0], z[1], atol=1e-5)


def test_text_cosine_is_the_mean_of_self_and_react_cosines(extractors, batch):
    z = extractors["text"].embed(batch)
    half = z.shape[1] // 2
    s, r = z[:, :half] * np.sqrt(2), z[:, half:] * np.sqrt(2)
    np.testing.assert_allclose(np.linalg.norm(s, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(r, axis=1), 1.0, atol=1e-5)
    for i, j in [(0, 1), (0, 2), (1, 2)]:
        paper = (s[i] @ s[j] + r[i] @ r[j]) / 2
        assert z[i] @ z[j] == pytest.approx(paper, abs=1e-5)


def test_mediapipe_finds_the_cartoon_faces():
    from dubops.emotion.extractors.face_detect import FaceDetector, crop_faces

    rng = np.random.default_rng(3)
    chars = [Character(g, "adult", "joy", False) for g in ("female", "male")]
    frames = render_clip(chars, "joy", np.zeros(5), 96, rng)
    detector = FaceDetector("mediapipe")
    boxes = detector.detect(frames[0])
    centres = [((x0 + x1) / 2, (y0 + y1) / 2) for x0, y0, x1, y1, _ in boxes]
    for x0, _, x1, _ in character_boxes(2, 96):  # one detection per character's head
        assert any(x0 <= cx <= x1 and cy < 0.6 * 96 for cx, cy in centres), (boxes, x0, x1)
    crops = crop_faces(frames, detector, num_frames=2, max_faces=3, side=32, margin=1.25)
    assert crops.dtype == np.uint8 and crops.shape[1:] == (32, 32, 3) and len(crops) >= 2
    empty = render_clip([], "joy", np.zeros(3), 96, rng)
    assert len(crop_faces(empty, detector, 2, 3, 32, 1.25)) == 0


def test_one_detector_serves_several_threads():
    """A server's batcher and job workers share one detector: frames from several threads
    at once must give each thread its own answer and leave the graph working."""
    from concurrent.futures import ThreadPoolExecutor

    from dubops.emotion.extractors.face_detect import FaceDetector

    rng = np.random.default_rng(4)
    chars = [Character(g, "adult", "joy", False) for g in ("female", "male")]
    frames = render_clip(chars, "joy", np.zeros(8), 96, rng)
    detector = FaceDetector("mediapipe")
    alone = [detector.detect(f) for f in frames]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda i: detector.detect(frames[i % 8]), range(64)))
    assert together == [alone[i % 8] for i in range(64)]
    assert detector.detect(frames[0]) == alone[0]


def test_face_vector_defined_without_faces(extractors):
    """An empty room has no face: the learned no-face feature still gives a unit vector."""
    empty = _clip(2, people=0)
    z = extractors["face"].embed([empty, empty])
    np.testing.assert_allclose(np.linalg.norm(z, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(z[0], z[1], atol=1e-6)


def test_save_load_round_trip_and_versions(extractors, batch, tmp_path):
    import torch

    for extractor in extractors.values():
        extractor.save(tmp_path)
    versions = extractor_versions(tmp_path)
    assert versions == {name: e.version for name, e in extractors.items()}
    assert len(set(versions.values())) == 4
    loaded = load_extractors(tmp_path)
    for name in ("scene", "text"):
        assert loaded[name].version == versions[name]
        np.testing.assert_allclose(
            loaded[name].embed(batch), extractors[name].embed(batch), atol=1e-5
        )

    # New weights -> new version, and the library would see it without loading torch models.
    scene = loaded["scene"]
    with torch.no_grad():
        next(scene.net.parameters()).add_(0.01)
    scene.save(tmp_path)
    changed = extractor_versions(tmp_path)
    assert changed["scene"] != versions["scene"]
    assert {k: v for k, v in changed.items() if k != "scene"} == {
        k: v for k, v in versions.items() if k != "scene"
    }
    # New settings with the same weights -> new version too.
    meta = json.loads((tmp_path / "text.json").read_text())
    weights = (tmp_path / "text.safetensors").read_bytes()
    assert content_version(weights, meta["settings"]) == versions["text"]
    assert content_version(weights, {**meta["settings"], "hidden": 1}) != versions["text"]


def test_missing_extractors_name_the_command(tmp_path):
    with pytest.raises(InputError, match="dubops train extractors"):
        load_extractors(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="dubops train extractors"):
        extractor_versions(tmp_path)  # exists, but empty


def test_audio_needs_speech(extractors):
    clip = _clip(0)
    clip.wave = None
    with pytest.raises(ValueError, match="audio_path"):
        extractors["audio"].embed([clip])


def test_config_checks():
    with pytest.raises(ConfigError, match=r"emotion\.dim"):
        load_config("tiny", overrides=["emotion.dim=255"])
    with pytest.raises(ConfigError, match=r"emotion\.face\.detector"):
        load_config("tiny", overrides=["emotion.face.detector=dlib"])
    with pytest.raises(FileNotFoundError, match=r"emotion\.text\.encoder_path"):
        extractor_class("text").settings_from(
            load_config("tiny", overrides=["emotion.text.encoder_path=/nowhere/model"])
        )


def test_mediapipe_loads_without_printing_to_stderr():
    """Its import and first frame print a protobuf AttributeError and TF Lite chatter to
    fd 2, which a user reads as a crash; both are silenced (a fresh process, so the
    import really happens)."""
    import subprocess
    import sys

    script = (
        "import numpy as np\n"
        "from dubops.emotion.extractors.face_detect import FaceDetector\n"
        "FaceDetector('mediapipe').detect(np.zeros((64, 64, 3), np.uint8))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=True
    )
    assert "GetPrototype" not in done.stderr and "XNNPACK" not in done.stderr, done.stderr
