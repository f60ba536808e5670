"""The review page: plain HTML, CSS and one script, served beside the API at ``/review``.

A person uploads a video, its subtitles and a voice per speaker, watches the lines
being dubbed, plays the original and the dub side by side, reads why each line
sounds as it does (reasoning, conclusion, footage, timings), re-dubs one line with
overrides and downloads the mp4. No build step: the files in ``serving/review/`` are
what the browser gets. The page calls the same routes as any client (``/jobs``,
``/jobs/{id}/segments``, ``/artifacts/{id}``), with the bearer token when one is set.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

PAGE_DIR = Path(__file__).with_name("review")


def mount_review_page(app: Any) -> None:
    """Serve ``serving/review/`` at ``/review/`` (``/review`` redirects there)."""
    from starlette.staticfiles import StaticFiles

    app.mount("/review", StaticFiles(directory=PAGE_DIR, html=True), name="review")
