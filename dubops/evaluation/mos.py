"""MOS proxy: DNSMOS P.835 (signal, background, overall) from ``speechmos`` (ships its models).

Objective stand-in for the papers' NMOS; it rates quality, not similarity.
The two ONNX models load once per process on the first call, with at most
:func:`set_dnsmos_threads` threads (ONNX Runtime's default, one per core, let
two evaluation workers on two cores fight over every core).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from dubops.sample_rates import ANALYSIS_SAMPLE_RATE

DNSMOS_SAMPLE_RATE = ANALYSIS_SAMPLE_RATE
_state: dict[str, Any] = {"model": None, "threads": 0}  # 0: ONNX Runtime's default


def set_dnsmos_threads(threads: int) -> None:
    """Threads of this process's DNSMOS sessions (before its first use; 0: one per core)."""
    if threads < 0:
        raise ValueError(f"threads must be non-negative, got {threads}")
    _state["threads"], _state["model"] = threads, None


def _model() -> Any:
    if _state["model"] is None:
        try:
            import onnxruntime as ort
            from speechmos import dnsmos as speechmos_dnsmos
        except ImportError as exc:
            raise RuntimeError(
                f"DNSMOS needs the speechmos package ({exc}); pip install speechmos"
            ) from None
        models = Path(speechmos_dnsmos.__file__).parent / "dnsmos_models"
        options = ort.SessionOptions()
        options.intra_op_num_threads = _state["threads"]
        options.inter_op_num_threads = 1

        def session(name: str) -> Any:
            return ort.InferenceSession(
                str(models / name), options, providers=["CPUExecutionProvider"]
            )

        # speechmos.dnsmos.run builds the same object, but DNSMOS.__init__ opens both
        # models with default sessions (one thread per core): set them up here instead.
        model = object.__new__(speechmos_dnsmos.DNSMOS)
        model.primary_model_path = str(models / "sig_bak_ovr.onnx")
        model.onnx_sess = session("sig_bak_ovr.onnx")
        model.p808_onnx_sess = session("model_v8.onnx")
        _state["model"] = model
    return _state["model"]


def dnsmos(wave: np.ndarray, sample_rate: int) -> dict[str, float]:
    """``{"ovrl", "sig", "bak"}`` in [1, 5] for a mono float wave."""
    from dubops.audio import resample

    model = _model()
    x = resample(np.asarray(wave, dtype=np.float32), sample_rate, DNSMOS_SAMPLE_RATE)
    x = np.clip(x, -1.0, 1.0)
    scores = model(x, DNSMOS_SAMPLE_RATE, False)  # False: P.835, not personalised
    return {
        "ovrl": float(scores["ovrl_mos"]),
        "sig": float(scores["sig_mos"]),
        "bak": float(scores["bak_mos"]),
    }
