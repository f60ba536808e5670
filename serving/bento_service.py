"""The BentoML service: ``bentoml serve dubops.serving.bento_service:DubbingBento``.

``dubops serve bento`` starts it with the whole config as JSON in
``DUBOPS_SERVE_CONFIG``. The model loads on a background thread, so ``/livez``
answers at once and ``/readyz`` turns 200 only when the pipeline is loaded; the API
itself is :mod:`dubops.serving.http_api`, mounted at ``/``. One worker: the model
is loaded once and BentoML's ``/metrics`` then shows every request. On SIGTERM
BentoML stops taking connections, lets in-flight requests finish, then
:meth:`DubbingBento.drain` lets the running jobs finish (a job cut short by a kill
is resumed at the next start).
"""

from __future__ import annotations

import os
import threading
from typing import Any

import bentoml

from dubops.serving.http_api import create_app

CONFIG_ENV = "DUBOPS_SERVE_CONFIG"
_service: Any = None


def _config() -> Any:
    from dubops.config import load_config
    from dubops.config.models import DubOpsConfig

    text = os.environ.get(CONFIG_ENV)
    return DubOpsConfig.model_validate_json(text) if text else load_config("tiny")


def _timeout() -> int:
    """BentoML's own request limit sits above ours, so ours (504, work stopped) answers."""
    return int(_config().serving.request_timeout_s) + 30


api = create_app(lambda: _service)


@bentoml.asgi_app(api, path="/")
@bentoml.service(name="dubops", workers=1, traffic={"timeout": _timeout()})
class DubbingBento:
    """Holds the :class:`~dubops.serving.core.DubbingService` of this worker."""

    def __init__(self) -> None:
        from dubops.logs import setup_logging
        from dubops.serving.core import DubbingService

        global _service
        setup_logging()
        self.service = DubbingService(_config(), server="bento", jobs=True)
        _service = self.service
        self._loader = threading.Thread(target=self._load, name="dubops-load", daemon=True)
        self._loader.start()

    def _load(self) -> None:
        import logging

        try:
            self.service.load()
        except Exception:  # readiness stays false; the log says why
            logging.getLogger(__name__).exception("loading the model failed")

    def __is_ready__(self) -> bool:
        return self.service.ready

    @bentoml.on_shutdown
    def drain(self) -> None:
        self.service.close(drain=True)
