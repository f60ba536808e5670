"""MOS proxy: DNSMOS P.835 (signal, background, overall) from ``speechmos`` (ships its models).

Objective stand-in for the papers' NMOS; it rates quality, not similarity.
The models load once per process (inside speechmos) on the first call.
"""

from __future__ import annotations

import numpy as np

DNSMOS_SAMPLE_RATE = 16_000


def dnsmos(wave: np.ndarray, sample_rate: int) -> dict[str, float]:
    """``{"ovrl", "sig", "bak"}`` in [1, 5] for a mono float wave."""
    try:
        from speechmos import dnsmos as _dnsmos
    except ImportError as exc:
        raise RuntimeError(
            f"DNSMOS needs the speechmos package ({exc}); pip install speechmos"
        ) from None
    from dubops.audio import resample

    x = resample(np.asarray(wave, dtype=np.float32), sample_rate, DNSMOS_SAMPLE_RATE)
    x = np.clip(x, -1.0, 1.0)
    scores = _dnsmos.run(x, sr=DNSMOS_SAMPLE_RATE)
    return {
        "ovrl": float(scores["ovrl_mos"]),
        "sig": float(scores["sig_mos"]),
        "bak": float(scores["bak_mos"]),
    }
