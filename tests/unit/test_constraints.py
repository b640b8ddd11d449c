"""constraints.txt pins every installed distribution, and agrees with pyproject.toml."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# Installed into every virtual environment by venv itself, not by the project.
_TOOLING = {"pip", "setuptools", "wheel", "egain-token-operator"}


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _constraints() -> dict[str, str]:
    pins = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[_canonical(name)] = version
    return pins


def test_every_pin_of_pyproject_is_in_the_constraints() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    requirements = [*project["dependencies"], *project["optional-dependencies"]["dev"]]
    constraints = _constraints()
    for requirement in requirements:
        name, _, version = requirement.partition("==")
        assert constraints.get(_canonical(name)) == version, (
            f"{requirement} in pyproject.toml; run hack/lock.sh"
        )


def test_the_environment_is_the_one_the_constraints_describe() -> None:
    installed = {
        _canonical(dist.metadata["Name"]): dist.version for dist in metadata.distributions()
    }
    constraints = _constraints()
    for name, version in installed.items():
        if name not in _TOOLING:
            assert constraints.get(name) == version, f"{name} {version} is not in constraints.txt"
