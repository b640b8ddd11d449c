"""The CRDs' names and columns are docs/api.md's, and `kubectl explain` teaches every field."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

CRDS = Path(__file__).resolve().parents[2] / "crds"

# file: (kind, plural, short name, scope, printer columns)
API: dict[str, tuple[str, str, str, str, list[str]]] = {
    "egaintokens.egain.cloud.yaml": (
        "EgainToken",
        "egaintokens",
        "egt",
        "Namespaced",
        ["Ready", "Reason", "Secret", "Expires", "Age"],
    ),
    "egainclients.egain.cloud.yaml": (
        "EgainClient",
        "egainclients",
        "egc",
        "Namespaced",
        ["Ready", "Reason", "Tokens", "Age"],
    ),
    "clusteregainclients.egain.cloud.yaml": (
        "ClusterEgainClient",
        "clusteregainclients",
        "cegc",
        "Cluster",
        ["Ready", "Reason", "Tokens", "Age"],
    ),
}


def _crd(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((CRDS / name).read_text())
    return loaded


def _fields_without_description(schema: Mapping[str, Any], path: str) -> Iterator[str]:
    """Every field under `schema` (by its path) that has no description."""
    for name, child in schema.get("properties", {}).items():
        child_path = f"{path}.{name}"
        # metadata is the API server's ObjectMeta: its own schema describes it.
        if child_path == ".metadata":
            continue
        if not child.get("description"):
            yield child_path
        yield from _fields_without_description(child, child_path)
    items = schema.get("items")
    if isinstance(items, Mapping):
        yield from _fields_without_description(items, f"{path}[]")
    values = schema.get("additionalProperties")
    if isinstance(values, Mapping):
        yield from _fields_without_description(values, f"{path}.*")


@pytest.mark.parametrize("name", sorted(API))
def test_crd_names_scope_and_columns_are_the_apis(name: str) -> None:
    kind, plural, short, scope, columns = API[name]
    spec = _crd(name)["spec"]
    assert spec["group"] == "egain.cloud"
    assert spec["scope"] == scope
    assert spec["names"]["kind"] == kind
    assert spec["names"]["plural"] == plural
    assert spec["names"]["shortNames"] == [short]
    (version,) = spec["versions"]
    assert version["name"] == "v1alpha1"
    assert version["subresources"] == {"status": {}}
    assert [column["name"] for column in version["additionalPrinterColumns"]] == columns


@pytest.mark.parametrize("name", sorted(API))
def test_every_field_has_a_description(name: str) -> None:
    (version,) = _crd(name)["spec"]["versions"]
    schema = version["schema"]["openAPIV3Schema"]
    assert schema.get("description")
    assert list(_fields_without_description(schema, "")) == []


@pytest.mark.parametrize("name", sorted(API))
def test_a_new_objects_status_reads_in_progress_until_the_operator_writes_it(name: str) -> None:
    # kstatus reads an object with no status at all as Current; the API server
    # fills in these defaults, and an observedGeneration of 0 is below every
    # metadata.generation, so kstatus reads InProgress until the first status.
    (version,) = _crd(name)["spec"]["versions"]
    status = version["schema"]["openAPIV3Schema"]["properties"]["status"]
    assert status["default"] == {}
    assert status["properties"]["observedGeneration"]["default"] == 0
    assert "required" not in status, "the default {} must be a valid status"
