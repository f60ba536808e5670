"""The speech trainer under torchrun: two CPU processes (gloo) end with the same weights."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from dubops.speech.checkpoint import MODEL_FILE, STATE_FILE, list_checkpoints

SCRIPT = Path(__file__).with_name("ddp_train_script.py")
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_two_ranks_train_in_step_and_only_rank_zero_writes(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        "OMP_NUM_THREADS": "1",
    }
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        str(SCRIPT),
        str(tmp_path),
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=280)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    finals = [load_file(tmp_path / f"final_rank{r}.safetensors") for r in (0, 1)]
    assert finals[0].keys() == finals[1].keys()
    for name in finals[0]:
        assert torch.equal(finals[0][name], finals[1][name]), name

    calls = [json.loads((tmp_path / f"calls_rank{r}.json").read_text()) for r in (0, 1)]
    assert calls[0]["saves"] == [2, 4] and calls[1]["saves"] == []
    assert calls[0]["metrics"] > 0 and calls[1]["metrics"] == 0
    assert calls[0]["step"] == calls[1]["step"] == 4

    steps = list_checkpoints(tmp_path / "checkpoints")
    assert [p.name for p in steps] == ["step_00000002", "step_00000004"]
    saved = load_file(steps[-1] / MODEL_FILE)
    assert all(torch.equal(saved[k], finals[0][k]) for k in saved)
    state = torch.load(steps[-1] / STATE_FILE, weights_only=True)
    assert state["world_size"] == 2 and len(state["rng"]) == 2
