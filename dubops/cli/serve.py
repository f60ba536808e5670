"""``dubops serve bento|kserve``: the champion (or any model) behind an HTTP API.

Both commands only assemble settings: the servers are ``dubops.serving``. ``bento``
replaces this process with ``bentoml serve`` (so SIGTERM reaches BentoML and drains
it); ``kserve`` runs KServe's ``ModelServer`` here, with its flags built from the
config (KServe reads the command line at import).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from dubops.cli.common import user_errors
from dubops.cli.options import config_options

if TYPE_CHECKING:
    from dubops.config import DubOpsConfig

app = typer.Typer(
    help="Serve a dubbing model over HTTP (BentoML: sync + jobs; KServe: v1 + v2).",
    no_args_is_help=True,
)

ModelOption = Annotated[
    str | None,
    typer.Option(
        "--model",
        "-m",
        help="models:/dubbing@champion (default), models:/dubbing/3, or a bundle folder.",
    ),
]
PortOption = Annotated[
    int | None, typer.Option("--port", help="HTTP port (default: serving.port).")
]
HostOption = Annotated[str | None, typer.Option("--host", help="Bind address (default 127.0.0.1).")]
StateOption = Annotated[
    Path | None,
    typer.Option(
        "--state-dir", help="Jobs database and result files (default: serving.state_dir)."
    ),
]


def _serving_config(config: DubOpsConfig, **values: object) -> DubOpsConfig:
    settings = {k: v for k, v in values.items() if v is not None}
    if "state_dir" in settings:
        settings["state_dir"] = str(Path(str(settings["state_dir"])).resolve())
    serving = config.serving.model_copy(update=settings)
    return config.model_copy(update={"serving": serving})


@app.command("bento")
@config_options()
def bento_command(
    model: ModelOption = None,
    port: PortOption = None,
    host: HostOption = None,
    state_dir: StateOption = None,
    *,
    config: DubOpsConfig,
) -> None:
    """BentoML: POST /dub (sync, batched), /jobs (durable), GET /artifacts/{id}, /metrics.

    The token in DUBOPS_API_TOKEN, when set, is required on every route but
    /livez, /readyz and /metrics. Ctrl-C or SIGTERM drains in-flight work.
    """
    from dubops.serving.bento_service import CONFIG_ENV

    config = _serving_config(config, model=model, port=port, host=host, state_dir=state_dir)
    settings = config.serving
    env = {**os.environ, CONFIG_ENV: config.model_dump_json()}
    # bentoml serve wipes $BENTOML_HOME/prometheus_multiproc_dir at start: a home per
    # server, so two servers on one host never erase or mix each other's /metrics.
    env.setdefault("BENTOML_HOME", str(Path(settings.state_dir).resolve() / "bentoml"))
    args = [
        sys.executable,
        "-m",
        "bentoml",
        "serve",
        "dubops.serving.bento_service:DubbingBento",
        "--host",
        settings.host,
        "--port",
        str(settings.port),
    ]
    typer.echo(f"serving {settings.model} at http://{settings.host}:{settings.port}", err=True)
    os.execve(sys.executable, args, env)


@app.command("kserve")
@config_options()
def kserve_command(
    model: ModelOption = None,
    port: PortOption = None,
    grpc_port: Annotated[
        int | None, typer.Option("--grpc-port", help="Turn gRPC on, on this port.")
    ] = None,
    state_dir: StateOption = None,
    *,
    config: DubOpsConfig,
) -> None:
    """KServe ModelServer: v1 /v1/models/dubbing:predict and v2 /v2/models/dubbing/infer.

    One worker (KServe's /metrics sees one process only). REST binds 0.0.0.0 (KServe
    hard-codes it); gRPC is off unless --grpc-port is given.
    """
    config = _serving_config(
        config, model=model, port=port, grpc_port=grpc_port, state_dir=state_dir
    )
    with user_errors():
        from dubops.serving.kserve_model import serve

        serve(config)


@app.command("try")
@config_options()
def try_command(
    clip: Annotated[str, typer.Option("--clip", help="A clip id of the corpus (held out).")],
    data: Annotated[Path, typer.Option("--data", "-d", help="The corpus folder.")],
    model: ModelOption = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the files.")] = Path("out"),
    port: Annotated[
        int | None, typer.Option("--port", help="HTTP port (default: a free one).")
    ] = None,
    *,
    config: DubOpsConfig,
) -> None:
    """Serve the model with BentoML on 127.0.0.1, dub one clip through the HTTP API
    (sync, then as a job), save the files, stop the server (what `make demo` ends with)."""
    from dubops.serving.client import free_port, serve_and_dub

    with user_errors():
        from dubops.cli.checks import corpus_dir
        from dubops.data.datasets import load_manifest

        corpus_dir(data, "--data")
        rows = load_manifest(data)
        found = rows[rows.clip_id == clip]
        if found.empty:
            from dubops.errors import InputError

            raise InputError(f"--clip {clip}: not in {data}; give a clip id of its manifest")
        row = found.iloc[0]
        media = {
            "clip_id": clip,
            "speaker_id": row.speaker,
            "react": row.react,  # the text extractor's cue: the same request as dub-clip's
            "script": row.script,
            "video": (data / row.video_path).read_bytes(),
            "prompt": (data / row.prompt_audio_path).read_bytes(),
        }
        config = _serving_config(config, model=model, port=port or free_port())
        settings = config.serving
        sets = [
            f"--set=serving.model={settings.model}",
            f"--set=tracking.tracking_uri={config.tracking.tracking_uri}",
            f"--set=tracking.artifact_location={config.tracking.artifact_location}",
        ]
        state = f"--state-dir={(out / 'serving-state').resolve()}"
        typer.echo(f"serving {settings.model} on http://127.0.0.1:{settings.port} ...", err=True)
        saved = serve_and_dub(
            [*sets, state], settings.port, media, out, out / "serving-state" / "server.log"
        )
    for name, path in saved.items():
        typer.echo(f"{name}: {path}")
