"""Layering of the config: it knows no orchestrator, and every section has one base.

``dubops.config`` is the library's; the orchestrators (``dubops.pipelines``,
``dubops.components``, ``dubops.serving``, ``dubops.feature_store``) read it, never the
other way round. The import checks run in a fresh interpreter, since this one has
loaded whatever earlier tests imported.
"""

from __future__ import annotations

import importlib
import inspect
import subprocess
import sys
import typing

import pytest
from pydantic import BaseModel

from dubops.config import DubOpsConfig
from dubops.config.section import Section

# What loading a config must never import: orchestrators and heavy libraries.
FORBIDDEN = (
    "dubops.pipelines",
    "dubops.components",
    "dubops.serving",
    "dubops.feature_store",
    "trl",
    "great_expectations",
    "torch",
    "transformers",
    "kfp",
    "feast",
    "pymilvus",
    "mlflow",
    "pandas",
)

# Every module that defines config sections.
SETTINGS_MODULES = (
    "dubops.config.models",
    "dubops.config.pipeline_settings",
    "dubops.config.library_settings",
    "dubops.speech.settings",
    "dubops.speech.train_config",
    "dubops.reasoning.settings",
    "dubops.emotion.settings",
    "dubops.emotion.graph_settings",
    "dubops.registry.settings",
)


def _loaded_after(code: str) -> list[str]:
    """Module names loaded by ``code`` in a fresh interpreter."""
    script = f"import sys\n{code}\nprint('\\n'.join(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def _forbidden(modules: list[str]) -> list[str]:
    return [m for m in modules if any(m == f or m.startswith(f + ".") for f in FORBIDDEN)]


def test_loading_a_config_imports_no_orchestrator():
    modules = _loaded_after(
        "import dubops.config\n"
        "config = dubops.config.load_config('tiny')\n"
        "assert config.pipeline.name and config.library.k"
    )
    assert "dubops.config.models" in modules
    assert _forbidden(modules) == []


@pytest.mark.parametrize("module", [*SETTINGS_MODULES, "dubops.config.section"])
def test_settings_module_imports_first_without_a_cycle(module):
    # Imported first, a settings module pulls dubops.config.section, which must not
    # import the models that import the settings module back.
    modules = _loaded_after(
        f"import {module}\nfrom dubops.config import load_config\nload_config()"
    )
    assert _forbidden(modules) == []


def test_section_base_is_pydantic_only():
    modules = _loaded_after("import dubops.config.section")
    assert [m for m in modules if m.startswith("dubops.")] == [
        "dubops.config",
        "dubops.config.section",
    ]


def _models_in(annotation: object) -> list[type[BaseModel]]:
    """Every pydantic model inside an annotation (``list[X]``, ``dict[str, X]``, ``X | None``)."""
    if inspect.isclass(annotation) and issubclass(annotation, BaseModel):
        return [annotation]
    found = []
    for arg in typing.get_args(annotation):
        found.extend(_models_in(arg))
    return found


def _all_sections(model: type[BaseModel], seen: set[type[BaseModel]]) -> None:
    if model in seen:
        return
    seen.add(model)
    for field in model.model_fields.values():
        for inner in _models_in(field.annotation):
            _all_sections(inner, seen)


def test_every_section_of_the_config_derives_from_the_one_base():
    sections: set[type[BaseModel]] = set()
    _all_sections(DubOpsConfig, sections)
    assert len(sections) > 20  # the walk reached the nested sections
    stray = sorted(
        f"{m.__module__}.{m.__qualname__}" for m in sections if not issubclass(m, Section)
    )
    assert stray == []


@pytest.mark.parametrize("name", SETTINGS_MODULES)
def test_every_model_in_a_settings_module_derives_from_the_one_base(name):
    module = importlib.import_module(name)
    models = [
        obj
        for obj in vars(module).values()
        if inspect.isclass(obj) and issubclass(obj, BaseModel) and obj.__module__ == name
    ]
    assert models, f"{name} defines no section"
    stray = [m.__qualname__ for m in models if not issubclass(m, Section)]
    assert stray == []


def test_orchestrator_settings_re_export_the_config_s_models():
    from dubops.config import library_settings, pipeline_settings
    from dubops.feature_store import settings as library_reexport
    from dubops.pipelines import settings as pipeline_reexport

    for name in pipeline_reexport.__all__:
        assert getattr(pipeline_reexport, name) is getattr(pipeline_settings, name)
    for name in library_reexport.__all__:
        assert getattr(library_reexport, name) is getattr(library_settings, name)
    assert DubOpsConfig.model_fields["pipeline"].annotation is pipeline_settings.PipelineConfig
    assert DubOpsConfig.model_fields["library"].annotation is library_settings.LibraryConfig


def test_section_rejects_unknown_keys():
    with pytest.raises(ValueError, match="not_a_field"):
        DubOpsConfig.model_validate({"pipeline": {"not_a_field": 1}})


def test_setting_one_key_of_a_section_keeps_its_fields_other_defaults():
    """The ControlNet's training section defaults to lr 1e-4 with 500 warm-up steps,
    unlike a plain TrainConfig; touching one of its keys must not reset the rest."""
    from dubops.config import load_config

    # base.yaml sets only the context of this section
    for overrides in ([], ["speech.controlnet_training.context=mixed"]):
        section = load_config("base", overrides=overrides).speech.controlnet_training
        assert (section.lr, section.warmup_steps) == (1e-4, 500)
    assert section.context == "mixed"
