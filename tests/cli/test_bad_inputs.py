"""Bad inputs over the real ``dubops`` executable: fail fast, in one line, leaving nothing.

Each case runs ``dubops`` as a user would (a subprocess in an empty working
folder) and checks: exit code 2, a one-line message on stderr that names the
option (or a JSON object on stdout with ``--json``), no traceback, no output
file, no temp file, nothing new in the working folder (no ``mlruns.db``), and
the time it took. Input errors must fail in under 5 s on an idle machine (the
table printed at the end has the measured times); the assertion allows 20 s so
a busy CI machine does not fail the suite.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.cli.conftest import TIMINGS
from tests.fixtures.corpus import build_fixture_corpus, grey_video

DUBOPS = str(Path(sys.executable).with_name("dubops"))
LIMIT_S = 20.0
MALLOC = {
    "MALLOC_MMAP_THRESHOLD_": "33554432",
    "MALLOC_TRIM_THRESHOLD_": "68719476736",
    "MALLOC_TOP_PAD_": "536870912",
}


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, Path]:
    """A real 1 s video, prompts (good, silent, faint, 8 kHz, short), files and a corpus."""
    import soundfile as sf

    root = tmp_path_factory.mktemp("media")
    rng = np.random.default_rng(0)
    t = np.arange(24_000 * 2) / 24_000
    voice = (0.3 * np.sin(2 * np.pi * 180 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))).astype(
        np.float32
    )
    paths = {
        "video": root / "clip.mp4",
        "prompt": root / "voice.wav",
        "silent": root / "silent.wav",
        "faint": root / "faint.wav",
        "narrow": root / "narrow.wav",
        "short": root / "short.wav",
        "text_mp4": root / "notes.mp4",
        "latin1": root / "script.txt",
        "a_file": root / "a_file",
        "bad_yaml": root / "bad.yaml",
        "corpus": root / "corpus",
        "pred16k": root / "pred16k",
        "srt": root / "scene.srt",
        "srt_overlap": root / "overlap.srt",
        "srt_past": root / "past.srt",
    }
    grey_video(paths["video"], 1.0)
    sf.write(paths["prompt"], voice, 24_000)
    sf.write(paths["silent"], np.zeros(48_000, np.float32), 24_000)
    sf.write(paths["faint"], (1e-4 * rng.standard_normal(48_000)).astype(np.float32), 24_000)
    sf.write(paths["narrow"], voice[::3], 8_000)
    sf.write(paths["short"], voice[:4_800], 24_000)
    paths["text_mp4"].write_text("not a video\n")
    paths["latin1"].write_bytes("Où est la clé ?".encode("latin-1"))
    paths["a_file"].write_text("a file, not a folder\n")
    paths["bad_yaml"].write_text("synth: [unclosed\n")
    build_fixture_corpus(paths["corpus"], n=4)
    paths["pred16k"].mkdir()
    paths["srt"].write_text("1\n00:00:00,000 --> 00:00:00,900\nA: Hi there.\n")
    paths["srt_overlap"].write_text(
        "1\n00:00:00,000 --> 00:00:00,800\nA: Hi.\n\n2\n00:00:00,500 --> 00:00:01,000\nA: Yo.\n"
    )
    paths["srt_past"].write_text("1\n00:00:00,000 --> 00:00:04,000\nA: Hi there.\n")
    sf.write(paths["pred16k"] / "clip_000.wav", voice[::3], 16_000)
    return paths


def _own(media: dict[str, Path], **change: object) -> list[str]:
    """dub-clip with your own video, script and prompt; ``change`` replaces one of them."""
    given = {
        "--video": media["video"],
        "--script": "Where are the keys?",
        "--prompt": media["prompt"],
    }
    given |= {f"--{k.replace('_', '-')}": v for k, v in change.items()}
    args = ["dub-clip", "--model", "models:/dubbing@champion"]
    for option, value in given.items():
        if value is not None:
            args += [option, value if isinstance(value, bytes) else str(value)]
    return args


def _scene(media: dict[str, Path], *extra: str, srt: Path | None = None) -> list[str]:
    """dub-video of the 1 s video with a subtitle file (``srt``: another one)."""
    return ["dub-video", str(media["video"]), "--subtitles", str(srt or media["srt"]), *extra]


def _cases(media: dict[str, Path], out: Path) -> dict[str, tuple[list, str]]:
    """name -> (arguments after ``dubops``, text the message must contain)."""
    m, o = media, ["--out", str(out)]
    long_script = "word " * 1000
    return {
        "video missing": (_own(m, video=m["video"].with_name("nope.mp4")) + o, "--video"),
        "video is a folder": (_own(m, video=m["video"].parent) + o, "--video"),
        "video not a video": (_own(m, video=m["text_mp4"]) + o, "--video"),
        "script empty": (_own(m, script="   ") + o, "--script"),
        "script 5,000 characters": (_own(m, script=long_script) + o, "--script"),
        "script too long for video": (_own(m, script="a" * 300) + o, "--script"),
        "script bytes not UTF-8": (
            _own(m, script="Où est la clé".encode("latin-1")) + o,
            "--script",
        ),
        "script file not UTF-8": (
            _own(m, script=None, script_file=m["latin1"]) + o,
            "--script-file",
        ),
        "prompt missing": (_own(m, prompt=m["prompt"].with_name("nope.wav")) + o, "--prompt"),
        "prompt silent": (_own(m, prompt=m["silent"]) + o, "--prompt"),
        "prompt near-silent": (_own(m, prompt=m["faint"]) + o, "--prompt"),
        "prompt 8 kHz": (_own(m, prompt=m["narrow"]) + o, "--prompt"),
        "prompt 0.2 s": (_own(m, prompt=m["short"]) + o, "--prompt"),
        "out is a folder": ([*_own(m), "--out", str(m["video"].parent)], "--out"),
        "out under a file": ([*_own(m), "--out", str(m["a_file"] / "x.mp4")], "--out"),
        "out unwritable": ([*_own(m), "--out", "/proc/dubops-test/x.mp4"], "--out"),
        "out not .mp4": ([*_own(m), "--out", str(out.with_suffix(".wav"))], "--out"),
        "set unknown field": (_own(m) + o + ["--set", "synth.clipz=3"], "synth.clipz"),
        "set without =": (_own(m) + o + ["--set", "synth.clips"], "synth.clips"),
        "config missing": (_own(m) + o + ["--config", str(m["a_file"]) + ".yaml"], "--config"),
        "config bad YAML": (_own(m) + o + ["--config", str(m["bad_yaml"])], "--config"),
        "model not a bundle": (
            ["dub-clip", "--model", str(m["corpus"]), "--clip", "x", *o],
            "--model",
        ),
        "clip: data missing": (
            ["dub-clip", "--clip", "x", "--data", str(m["corpus"] / "nope"), *o],
            "--data",
        ),
        "clip unknown": (["dub-clip", "--clip", "nope", "--data", str(m["corpus"]), *o], "--clip"),
        "speak: seconds negative": (
            [
                "speak",
                "--model",
                str(m["corpus"]),
                "--script",
                "Hi there",
                "--prompt",
                str(m["prompt"]),
                "--seconds",
                "-1",
                "--out",
                str(out.with_suffix(".wav")),
            ],
            "--seconds",
        ),
        "speak: seconds zero": (
            [
                "speak",
                "--model",
                str(m["corpus"]),
                "--script",
                "Hi there",
                "--prompt",
                str(m["prompt"]),
                "--seconds",
                "0",
                "--out",
                str(out.with_suffix(".wav")),
            ],
            "--seconds",
        ),
        "speak: two hours": (
            [
                "speak",
                "--model",
                str(m["corpus"]),
                "--script",
                "Hi there",
                "--prompt",
                str(m["prompt"]),
                "--seconds",
                "7200",
                "--out",
                str(out.with_suffix(".wav")),
            ],
            "--seconds",
        ),
        "eval: pred at 16 kHz": (
            ["eval", "--ref", str(m["corpus"]), "--pred", str(m["pred16k"]), "--out", str(out)],
            "--pred",
        ),
        "eval: pred missing": (
            [
                "eval",
                "--ref",
                str(m["corpus"]),
                "--pred",
                str(m["corpus"] / "nope"),
                "--out",
                str(out),
            ],
            "--pred",
        ),
        "eval: ref missing": (
            ["eval", "--ref", str(m["corpus"] / "nope"), "--baseline", "all", "--out", str(out)],
            "--ref",
        ),
        "synth: out under a file": (
            ["data", "synth", "--preset", "micro", "--out", str(m["a_file"] / "corpus")],
            "--out",
        ),
        "library query: none built": (["library", "query", "--clip", "x"], "--library"),
        "dub-video: voice without =": (_scene(m, "--voice", "A") + o, "--voice 'A'"),
        "dub-video: voice silent": (_scene(m, "--voice", f"A={m['silent']}") + o, "--voice A"),
        "dub-video: speaker without voice": (
            _scene(m, "--voice", f"B={m['prompt']}") + o,
            "--voice A=",
        ),
        "dub-video: subtitles overlap": (
            _scene(m, "--voice", f"A={m['prompt']}", srt=m["srt_overlap"]) + o,
            "line 5: starts at 0.500 s",
        ),
        "dub-video: subtitles past the video": (
            _scene(m, "--voice", f"A={m['prompt']}", srt=m["srt_past"]) + o,
            "past the video's end",
        ),
        "dub-video: segment malformed": (
            _scene(m, "--voice", f"A={m['prompt']}", "--segment", "x") + o,
            "--segment 'x'",
        ),
        "dub-video: segment unknown line": (
            _scene(m, "--voice", f"A={m['prompt']}", "--segment", "4.seed=1") + o,
            "--segment 4: no such segment",
        ),
        "dub-video: no store": (_scene(m, "--voice", f"A={m['prompt']}") + o, "no MLflow store"),
        "dub-clip: no store": ([*_own(m), *o], "no MLflow store"),
        "registry list: no store": (["registry", "list"], "no MLflow store"),
        "registry show: no store": (["registry", "show", "champion"], "no MLflow store"),
    }


def _run(args: list, cwd: Path, env_extra: dict[str, str] | None = None):
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env |= MALLOC | {"COLUMNS": "100"} | (env_extra or {})
    began = time.perf_counter()
    done = subprocess.run(
        [DUBOPS.encode(), *[a if isinstance(a, bytes) else str(a).encode() for a in args]],
        cwd=cwd,
        env=env,
        capture_output=True,
        timeout=120,
    )
    seconds = time.perf_counter() - began
    return done, seconds


def _leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if ".tmp-" in p.name or ".dubops-probe-" in p.name]


_NAMES = [
    "video missing", "video is a folder", "video not a video", "script empty",
    "script 5,000 characters", "script too long for video", "script bytes not UTF-8",
    "script file not UTF-8", "prompt missing", "prompt silent", "prompt near-silent",
    "prompt 8 kHz", "prompt 0.2 s", "out is a folder", "out under a file", "out unwritable",
    "out not .mp4", "set unknown field", "set without =", "config missing", "config bad YAML",
    "model not a bundle", "clip: data missing", "clip unknown", "speak: seconds negative",
    "speak: seconds zero", "speak: two hours", "eval: pred at 16 kHz", "eval: pred missing",
    "eval: ref missing", "synth: out under a file", "library query: none built",
    "dub-clip: no store", "registry list: no store", "registry show: no store",
    "dub-video: voice without =", "dub-video: voice silent", "dub-video: speaker without voice",
    "dub-video: subtitles overlap", "dub-video: subtitles past the video",
    "dub-video: segment malformed", "dub-video: segment unknown line", "dub-video: no store",
]  # fmt: skip


@pytest.mark.parametrize("name", _NAMES)
def test_bad_input_fails_fast_in_one_line_and_leaves_nothing(name, media, tmp_path):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    out = tmp_path / "new" / "dub.mp4"
    args, names = _cases(media, out)[name]
    before = sorted(media["video"].parent.rglob("*"))
    done, seconds = _run(args, cwd)
    stderr = done.stderr.decode(errors="replace")
    lines = [line for line in stderr.splitlines() if line.strip()]
    TIMINGS.append((name, done.returncode, seconds, lines[-1] if lines else ""))
    assert done.returncode == 2, stderr
    assert "Traceback" not in stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert names in lines[0], lines[0]
    assert seconds < LIMIT_S
    assert not out.exists() and not out.parent.exists()
    assert not out.with_suffix(".wav").exists()
    assert list(cwd.iterdir()) == [], "the command wrote into the working folder"
    assert sorted(media["video"].parent.rglob("*")) == before
    assert not _leftovers(tmp_path) and not _leftovers(media["video"].parent)


def test_json_commands_print_errors_as_json(media, tmp_path):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    args = _own(media, video=media["video"].with_name("nope.mp4"))
    done, _ = _run([*args, "--out", str(tmp_path / "o.mp4"), "--json"], cwd)
    assert done.returncode == 2
    error = json.loads(done.stdout)
    assert error["type"] == "InputError" and "--video" in error["error"]
    assert b"Traceback" not in done.stderr
    listing, _ = _run(["registry", "list", "--json"], cwd)
    assert listing.returncode == 2 and "no MLflow store" in json.loads(listing.stdout)["error"]
    assert list(cwd.iterdir()) == []


def test_verbose_shows_the_traceback(media, tmp_path):
    args = _own(media, prompt=media["silent"])
    done, _ = _run(["-v", *args, "--out", str(tmp_path / "o.mp4")], tmp_path)
    stderr = done.stderr.decode()
    assert done.returncode == 2 and "Traceback" in stderr and "--prompt" in stderr


def test_registry_reads_honour_mlflow_tracking_uri_and_create_nothing(tmp_path):
    store = tmp_path / "elsewhere" / "store.db"
    done, _ = _run(["registry", "list"], tmp_path, {"MLFLOW_TRACKING_URI": f"sqlite:///{store}"})
    assert done.returncode == 2 and str(store) in done.stderr.decode()
    assert not store.parent.exists() and not (tmp_path / "mlruns.db").exists()


def test_validate_notices_a_manifest_that_disagrees_with_corpus_json(tmp_path):
    import pandas as pd

    from dubops.data.layout import CorpusLayout

    root = build_fixture_corpus(tmp_path / "c", n=4)
    layout = CorpusLayout(root)
    frame = pd.read_parquet(layout.manifest)
    info = {
        "clips": len(frame),
        "counts": {"split": frame["split"].value_counts().to_dict()},
        "config": {"audio": {"sample_rate": 24_000}},
    }
    layout.info.write_text(json.dumps(info))
    ok, _ = _run(["data", "validate", str(root), "--json"], tmp_path)
    assert ok.returncode == 0, ok.stdout
    frame.iloc[:-1].to_parquet(layout.manifest, index=False)  # one clip lost
    bad, _ = _run(["data", "validate", str(root), "--json"], tmp_path)
    failures = json.loads(bad.stdout)["failures"]
    assert bad.returncode == 1
    assert {f["expectation"] for f in failures} >= {"manifest_matches_corpus_info"}
    assert any("records 4" in f["message"] for f in failures)


def test_help_shows_switches_as_flags():
    done, _ = _run(["dub-clip", "--help"], Path.cwd())
    text = done.stdout.decode()
    assert "--no-mos" in text and "--no-eval" in text and "<bool>" not in text
