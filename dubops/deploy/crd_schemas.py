"""Vendored CRD schemas and the strict form we validate custom resources against.

``kubernetes-validate`` knows the core kinds only. A custom resource (InferenceService,
ServiceMonitor, PrometheusRule, PyTorchJob) is checked against the ``openAPIV3Schema``
of its CRD, vendored under ``infra/k8s/crds`` (one JSON file per kind, descriptions
dropped to keep them small, the source and commit recorded). An API server prunes
unknown fields silently, so a misspelt field would deploy and do nothing: the strict form
adds ``additionalProperties: false`` to every object schema that lists its properties
(except where the CRD itself keeps unknown fields, and ``metadata``, which the API
server validates as ObjectMeta).

``python -m dubops.deploy.crd_schemas CRD.yaml --source URL@COMMIT --out infra/k8s/crds``
vendors a CRD file.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from dubops.deploy.layout import DeployError
from dubops.fileio import atomic_path

_DROPPED = {"description"}


def strip(node: Any) -> Any:
    """The schema without its descriptions (they are most of a CRD's bytes)."""
    if isinstance(node, dict):
        return {k: strip(v) for k, v in node.items() if k not in _DROPPED}
    if isinstance(node, list):
        return [strip(v) for v in node]
    return node


def strict(schema: dict[str, Any], top: bool = True) -> dict[str, Any]:
    """A copy that refuses properties the schema does not list (see the module doc)."""
    out = dict(schema)
    properties = schema.get("properties")
    if isinstance(properties, dict):
        out["properties"] = {
            name: (sub if top and name == "metadata" else strict(sub, top=False))
            for name, sub in properties.items()
        }
        keeps_unknown = schema.get("x-kubernetes-preserve-unknown-fields") is True
        if "additionalProperties" not in schema and not keeps_unknown:
            out["additionalProperties"] = False
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            out[key] = strict(schema[key], top=False)
    for key in ("allOf", "anyOf", "oneOf"):
        if isinstance(schema.get(key), list):
            # Branches constrain the same object: only the outer schema closes it.
            out[key] = [_close_nested(branch) for branch in schema[key]]
    return out


def _close_nested(branch: dict[str, Any]) -> dict[str, Any]:
    """A combinator branch: its nested objects closed, its own level left open."""
    out = dict(branch)
    if isinstance(branch.get("properties"), dict):
        out["properties"] = {k: strict(v, top=False) for k, v in branch["properties"].items()}
    return out


def vendor(crd_file: Path, source: str, out_dir: Path) -> list[Path]:
    """Write one ``<group>_<kind>_<version>.json`` per served version of the CRD."""
    import yaml

    crd = yaml.safe_load(crd_file.read_text())
    if crd.get("kind") != "CustomResourceDefinition":
        raise DeployError(f"{crd_file}: not a CustomResourceDefinition")
    spec = crd["spec"]
    written = []
    for version in spec["versions"]:
        if not version.get("served", True):
            continue
        record = {
            "group": spec["group"],
            "kind": spec["names"]["kind"],
            "version": version["name"],
            "source": source,
            "openAPIV3Schema": strip(version["schema"]["openAPIV3Schema"]),
        }
        name = f"{spec['group']}_{spec['names']['kind'].lower()}_{version['name']}.json"
        path = out_dir / name
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(record, separators=(",", ":"), sort_keys=True) + "\n")
        written.append(path)
    return written


def load(crd_dir: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """``(apiVersion, kind)`` -> vendored record, for every file in ``crd_dir``."""
    records = {}
    for path in sorted(crd_dir.glob("*.json")):
        record = json.loads(path.read_text())
        api_version = f"{record['group']}/{record['version']}"
        records[(api_version, record["kind"])] = record
    return records


def main() -> None:
    parser = argparse.ArgumentParser(description="Vendor a CRD's schemas as JSON.")
    parser.add_argument("crd", type=Path, help="the CRD YAML file")
    parser.add_argument("--source", required=True, help="where it came from: URL@commit")
    parser.add_argument("--out", type=Path, required=True, help="infra/k8s/crds")
    args = parser.parse_args()
    for path in vendor(args.crd, args.source, args.out):
        print(path)


if __name__ == "__main__":
    main()
