"""What a local pipeline run echoes to the console while its steps run."""

from __future__ import annotations

import io

from dubops.pipelines.step_log import step_log


def test_progress_lines_are_echoed_and_the_rest_only_logged(tmp_path) -> None:
    echo = io.StringIO()
    lines = [
        "    [KFP Executor 2026-12-05 20:10:59,254 INFO]: Looking for component `x`",
        "[dubops pipeline] dit_pretrain: running (key 1)",
        "    [KFP Executor 2026-12-05 20:11:00,000 INFO]: dit_pretrain update 10/40: loss 1.2",
        "    [KFP Executor 2026-12-05 20:11:01,000 INFO]: sft epoch 3: format_validity 1.000",
        "    [KFP Executor 2026-12-05 20:11:02,000 INFO]: scene extractor: accuracy {}",
        '                "config_json": "{...}"',
    ]
    with step_log(tmp_path / "steps.log", echo=echo):
        for line in lines:
            print(line)
    shown = echo.getvalue().splitlines()
    assert [line for line in lines if line.strip() in shown] == lines[1:5]
    assert (tmp_path / "steps.log").read_text().splitlines() == lines
