"""The test ground's OCI registry: CNCF distribution, with TLS and a password.

It listens on the node bridge's gateway address, port `PORT`, under a serving
certificate of the cluster's CA, and answers only a user `USERNAME` whose
password is made at start (an htpasswd file, bcrypt). The node's containerd
trusts it through its registry host configuration (`hosts_config`), and reaches
it without a proxy; nothing else is a registry for the node. Its storage, its
configuration live under `<state dir>/registry`, its access log (one line per
request, in the combined log format: `requests()` reads it back) in
`<state dir>/registry.log`; a new cluster starts without either.

    plane.registry.host                    # 10.250.<n>.1:5000
    plane.registry.docker_config(directory)  # a config.json that logs crane and helm in
    plane.registry.requests()              # what was asked of it, and by whom
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import shutil
import ssl
from dataclasses import dataclass
from pathlib import Path

import bcrypt
import httpx

from testground import pki

PORT = 5000
USERNAME = "egt"
DIRECTORY = "registry"
# host - user [time] "METHOD PATH PROTOCOL" status size "referer" "user agent"
_ACCESS_LINE = re.compile(
    r'^\S+ \S+ \S+ \[[^]]*\] "(?P<method>[A-Z]+) (?P<path>\S+) [^"]*" (?P<status>\d{3}) '
    r'\S+ "[^"]*" "(?P<agent>[^"]*)"'
)


@dataclass(frozen=True)
class Request:
    """One line of the registry's access log."""

    method: str
    path: str
    status: int
    user_agent: str


@dataclass(frozen=True)
class Registry:
    """Where the registry of a cluster listens, and the files that describe it."""

    gateway: str
    directory: Path  # <state dir>/registry
    ca_file: Path  # the cluster CA, which signed its serving certificate

    @property
    def host(self) -> str:
        """`address:port`, as image references and `docker login` write it."""
        return f"{self.gateway}:{PORT}"

    @property
    def config(self) -> Path:
        return self.directory / "config.yml"

    @property
    def log(self) -> Path:
        """Its output, named like every component's log."""
        return self.directory.parent / "registry.log"

    def password(self) -> str:
        return (self.directory / "password").read_text()

    def auth(self) -> str:
        """The `auth` field of a Docker config: base64 of `user:password`."""
        return base64.b64encode(f"{USERNAME}:{self.password()}".encode()).decode()

    def docker_config(self, directory: Path) -> Path:
        """Write `directory/config.json` logging in to the registry; return the file.

        crane reads it through `DOCKER_CONFIG=directory`, helm through
        `HELM_REGISTRY_CONFIG=<the file>`.
        """
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / "config.json"
        path.write_text(json.dumps({"auths": {self.host: {"auth": self.auth()}}}))
        path.chmod(0o600)
        return path

    def requests(self) -> list[Request]:
        """Every request in the access log so far, oldest first."""
        found = []
        for line in self.log.read_text(errors="replace").splitlines():
            match = _ACCESS_LINE.match(line)
            if match:
                found.append(
                    Request(
                        match["method"],
                        match["path"],
                        int(match["status"]),
                        match["agent"],
                    )
                )
        return found

    def ready(self) -> bool:
        """Whether it answers `/v2/`, over TLS, with 401 to a request without credentials."""
        try:
            response = httpx.get(
                f"https://{self.host}/v2/",
                verify=ssl.create_default_context(cafile=str(self.ca_file)),
                timeout=2,
            )
        except httpx.HTTPError:
            return False
        return response.status_code == 401


def registry_of(state_dir: Path, gateway: str) -> Registry:
    return Registry(gateway, state_dir / DIRECTORY, state_dir / "pki" / "cluster-ca.crt")


def prepare(state_dir: Path, gateway: str, ca: pki.KeyPair) -> Registry:
    """A new registry's files: a serving certificate, a password, the configuration.

    Any storage of an earlier cluster in `state_dir` is removed first.
    """
    registry = registry_of(state_dir, gateway)
    shutil.rmtree(registry.directory, ignore_errors=True)
    registry.log.unlink(missing_ok=True)
    registry.directory.mkdir(parents=True)
    serving = pki.issue(
        ca,
        registry.directory,
        "serving",
        common_name="egt-registry",
        ip_addresses=(gateway,),
        server=True,
    )
    password = secrets.token_urlsafe(24)
    (registry.directory / "password").write_text(password)
    (registry.directory / "password").chmod(0o600)
    digest = bcrypt.hashpw(password.encode(), bcrypt.gensalt()).decode()
    htpasswd = registry.directory / "htpasswd"
    htpasswd.write_text(f"{USERNAME}:{digest}\n")
    config = {
        "version": 0.1,
        "log": {"level": "warn", "formatter": "text", "accesslog": {"disabled": False}},
        "storage": {
            "filesystem": {"rootdirectory": str(registry.directory / "storage")},
            "delete": {"enabled": True},
        },
        "http": {
            "addr": registry.host,
            "secret": secrets.token_urlsafe(24),
            "tls": {"certificate": str(serving.cert), "key": str(serving.key)},
        },
        "auth": {"htpasswd": {"realm": "egt-registry", "path": str(htpasswd)}},
    }
    registry.config.write_text(json.dumps(config, indent=2))  # JSON is YAML
    return registry


def hosts_config(registry: Registry, config_path: Path) -> None:
    """containerd's host configuration for the registry, under its `config_path`."""
    directory = config_path / registry.host
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "hosts.toml").write_text(
        f'server = "https://{registry.host}"\n\n'
        f'[host."https://{registry.host}"]\n'
        '  capabilities = ["pull", "resolve"]\n'
        f'  ca = "{registry.ca_file}"\n'
    )
