"""constraints.txt pins every installed distribution, and agrees with pyproject.toml."""

from __future__ import annotations

import tomllib
from importlib import metadata
from pathlib import Path

from tests.pins import canonical, pinned_versions

REPO = Path(__file__).resolve().parents[2]
# Installed into every virtual environment by venv itself, not by the project.
_TOOLING = {"pip", "setuptools", "wheel", "egain-token-operator"}


def test_every_pin_of_pyproject_is_in_the_constraints() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    requirements = [*project["dependencies"], *project["optional-dependencies"]["dev"]]
    constraints = pinned_versions()
    for requirement in requirements:
        name, _, version = requirement.partition("==")
        assert constraints.get(canonical(name)) == version, (
            f"{requirement} in pyproject.toml; run hack/lock.sh"
        )


def test_the_environment_is_the_one_the_constraints_describe() -> None:
    installed = {
        canonical(dist.metadata["Name"]): dist.version for dist in metadata.distributions()
    }
    constraints = pinned_versions()
    for name, version in installed.items():
        if name not in _TOOLING:
            assert constraints.get(name) == version, f"{name} {version} is not in constraints.txt"
