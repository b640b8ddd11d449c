"""egain-token-operator: keeps eGain OAuth2 access tokens fresh in Kubernetes Secrets."""

from importlib.metadata import version

# The installed distribution's version: pyproject.toml is the one place it is written.
__version__ = version("egain-token-operator")
