"""Scene jobs over HTTP and the review page in a real browser (Debian's Chromium).

One BentoML server (the real ``dubops serve bento``) with the registered micro
champion serves both: the API tests submit a scene job, follow its lines, re-dub one
line and check what is refused; the browser test uploads a scene through the page,
sees its lines, re-dubs one, and downloads the mp4, as a person would.
"""

from __future__ import annotations

import base64
import os
import re
from pathlib import Path

import httpx
import pytest

from tests.fixtures.served_model import poll, start_server

pytestmark = pytest.mark.slow
CHROMIUM = Path("/usr/bin/chromium")  # Debian's (.ci/run installs it); no download here
FINAL = ("succeeded", "failed", "cancelled")


@pytest.fixture(scope="module")
def scene(small_synthetic_corpus, tmp_path_factory):
    from dubops.scenes.synthetic_scene import make_scene

    return make_scene(small_synthetic_corpus, tmp_path_factory.mktemp("scene"), 2, 12.0)


@pytest.fixture(scope="module")
def server(served_champion, scene, tmp_path_factory):
    root = tmp_path_factory.mktemp("review_server")
    env = {"BENTOML_HOME": str(root / "bentoml_home")}
    examples = f"serving.allowed_roots=[{scene.video.parent}]"  # the page offers the scene
    served = start_server("bento", served_champion, root / "server.log",
                          "--state-dir", str(root / "state"), "--set", examples,
                          env=env)  # fmt: skip
    try:
        served.wait_ready("/readyz", timeout=240)
        yield served
    finally:
        served.stop()


def _finished(url: str, job_id: str, timeout: float = 240) -> dict:
    def done():
        job = httpx.get(f"{url}/jobs/{job_id}", timeout=10).json()
        return job if job["state"] in FINAL else None

    job = poll(done, timeout, f"job {job_id}", interval=0.5)
    assert job["state"] == "succeeded", job
    return httpx.get(f"{url}/jobs/{job_id}/result", timeout=10).json()


def _dubs(url: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"{url}/metrics", timeout=10).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "dubops_dubs_total"
    )


def _scene_fields(scene) -> dict:
    voices = {k: base64.b64encode(v.read_bytes()).decode() for k, v in scene.voices.items()}
    return {
        "video_b64": base64.b64encode(scene.video.read_bytes()).decode(),
        "subtitles": scene.subtitles.read_text(),
        "voices": voices,
    }


def test_a_scene_job_lists_its_lines_and_a_redub_job_redoes_one(server, scene):
    url = server.url
    made = httpx.post(f"{url}/jobs", json=_scene_fields(scene), timeout=60)
    assert made.status_code == 202, made.text
    result = _finished(url, made.json()["id"])
    n = len(result["segments"])
    assert n >= 2 and result["dubbed"] == n and abs(result["track_seconds"] - 12.0) < 1e-3
    for line in result["segments"]:
        assert line["conclusion"] and set(line["artifacts"]) == {"wav"}
    states = httpx.get(f"{url}/jobs/{made.json()['id']}/segments", timeout=10).json()
    assert states["lines"] == {str(i): "done" for i in range(1, n + 1)}
    mp4 = httpx.get(f"{url}/artifacts/{result['artifacts']['mp4']}", timeout=30)
    assert mp4.status_code == 200 and mp4.content[4:8] == b"ftyp"

    # Each dubbed line counts as a served dub (metrics and the drift window see it).
    assert _dubs(url) >= n

    redo = httpx.post(f"{url}/jobs/{made.json()['id']}/segments/2",
                      json={"emotion": "fear", "seed": 3}, timeout=60)  # fmt: skip
    assert redo.status_code == 202, redo.text
    again = _finished(url, redo.json()["id"])
    assert (again["dubbed"], again["cached"]) == (1, n - 1)
    assert again["segments"][1]["conclusion"]["emotion"] == "fear"
    assert again["changes"] == {"2": {"emotion": "fear", "seed": "3"}}


def test_example_scenes_under_the_allowed_folders_are_offered_and_dub_by_path(server, scene):
    found = httpx.get(f"{server.url}/examples", timeout=10).json()["scenes"]
    assert [s["name"] for s in found] == [scene.video.parent.name]
    assert set(found[0]["voice_uris"]) == set(scene.voices)
    fields = {k: v for k, v in found[0].items() if k != "name"}
    made = httpx.post(f"{server.url}/jobs", json=fields, timeout=60)
    assert made.status_code == 202, made.text
    assert len(_finished(server.url, made.json()["id"])["segments"]) >= 2
    outside = fields | {"subtitles_uri": "/etc/hostname"}
    answer = httpx.post(f"{server.url}/jobs", json=outside, timeout=60)
    assert answer.status_code == 400 and "outside the allowed folders" in answer.json()["error"]


@pytest.mark.parametrize(
    ("change", "status", "expected"),
    [
        ({"subtitles": "1\n00:00:00,000 --> 00:00:30,000\nX: Too late.\n"}, 400, "past the video"),
        ({"voices": {}}, 400, "voices: none given"),
        ({"subtitles": "1\n00:00:00,000 -> 00:00:01,000\nA: hi\n"}, 400, "line 2: expected"),
        ({"mood": "x"}, 400, "mood: unknown field of a scene job"),
    ],
)
def test_bad_scene_jobs_are_refused_naming_the_problem(server, scene, change, status, expected):
    fields = _scene_fields(scene) | change
    answer = httpx.post(f"{server.url}/jobs", json=fields, timeout=60)
    assert answer.status_code == status and expected in answer.json()["error"], answer.text


def test_redub_of_an_unknown_job_or_line_is_refused(server, scene):
    assert httpx.post(f"{server.url}/jobs/nope/segments/1", json={"seed": 1}).status_code == 404
    made = httpx.post(f"{server.url}/jobs", json=_scene_fields(scene), timeout=60).json()
    answer = httpx.post(f"{server.url}/jobs/{made['id']}/segments/99", json={"seed": 1})
    assert answer.status_code == 400 and "--segment 99: no such segment" in answer.json()["error"]
    answer = httpx.post(f"{server.url}/jobs/{made['id']}/segments/1", json={"volume": 1})
    assert answer.status_code == 400 and "changes.1.volume: unknown field" in answer.json()["error"]


@pytest.mark.skipif(
    not CHROMIUM.exists(), reason="Debian's chromium is missing: .ci/run installs it"
)
def test_the_review_page_dubs_redubs_and_downloads_in_chromium(server, scene, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    from dubops.video import probe_video

    bad = tmp_path / "overlap.srt"
    speaker = sorted(scene.voices)[0]
    bad.write_text(f"1\n00:00:00,000 --> 00:00:03,000\n{speaker}: One.\n\n"
                   f"2\n00:00:02,000 --> 00:00:04,000\n{speaker}: Two.\n")  # fmt: skip
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1300, "height": 1000})
        page.goto(f"{server.url}/review")
        # An example scene on the server: picked, dubbed, its lines listed.
        expect(page.locator("#example option")).to_have_text([re.compile(scene.video.parent.name)])
        page.click("#dub-example")
        expect(page.locator("#segments tbody tr").first).to_be_visible(timeout=240_000)
        expect(page.locator("#original")).to_have_attribute("src", re.compile("/artifacts/"))

        page.set_input_files("#video", str(scene.video))

        page.set_input_files("#subtitles", str(bad))  # refused by the server, shown on the page
        expect(page.locator("#voices input[type=file]")).to_have_count(1)
        page.set_input_files(f"input[name=voice_{speaker}]", str(scene.voices[speaker]))
        page.click("#submit")
        expect(page.locator("#form-error")).to_contain_text("line 5: starts at 2.000 s")

        page.set_input_files("#subtitles", str(scene.subtitles))
        expect(page.locator("#voices input[type=file]")).to_have_count(len(scene.voices))
        for name, path in scene.voices.items():
            page.set_input_files(f"input[name=voice_{name}]", str(path))
        page.click("#submit")
        rows = page.locator("#segments tbody tr")
        expect(rows.first).to_be_visible(timeout=240_000)
        n = rows.count()
        # The API test dubbed this scene already: the server's line cache serves it now.
        expect(page.locator("#summary")).to_contain_text(f"{n} lines,")
        for name in scene.voices:
            expect(page.locator("#segments")).to_contain_text(name)

        rows.nth(1).locator("button.redub").click()
        page.select_option(".redub-emotion", "fear")
        page.click(".redub-go")
        expect(page.locator("#summary")).to_contain_text(
            f"1 dubbed, {n - 1} from the cache", timeout=240_000
        )
        expect(rows.nth(1).locator("td").nth(4)).to_contain_text("fear")

        with page.expect_download() as download:
            page.click("#download")
        saved = tmp_path / "dub.mp4"
        download.value.save_as(saved)
        shot = os.environ.get("DUBOPS_REVIEW_SCREENSHOT") or str(tmp_path / "review.png")
        page.screenshot(path=shot, full_page=True)
        browser.close()
    info = probe_video(saved)
    assert info.has_audio and abs(info.seconds - 12.0) < 0.1
