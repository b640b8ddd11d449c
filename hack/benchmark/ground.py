"""The ground every row stands on: the cluster, the eGain emulator, and the operators and
watches the rows start, each remembered so that all can be stopped.

A row gets a namespace of its own (a `Tenant`: a registered eGain client and
its credentials Secret), EgainTokens in it, and an operator serving it.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmark.kube import Api, AuditLog, operator_kubeconfig, secrets_path, tokens_path
from benchmark.settings import Settings
from benchmark.watch import TokenWatch
from testground.controlplane import ControlPlane
from testground.emulator import EgainEmulator
from testground.operatorprocess import OperatorProcess

TENANT = "TMPRODB88619984"
SCOPE = "knowledge.portalmgr.manage"
CREDENTIALS = "egain-client"
CREATE_CONCURRENCY = 32  # how many objects the benchmark creates at a time


@dataclass(frozen=True)
class Tenant:
    """A namespace with a registered eGain client and its credentials Secret."""

    namespace: str
    client_id: str
    client_secret: str


@dataclass
class Running:
    """An operator serving a namespace, and the watch on its EgainTokens."""

    tenant: Tenant
    operator: OperatorProcess
    watch: TokenWatch


class Ground:
    """Sets up what the rows measure on; remembers every operator and watch it started."""

    def __init__(
        self,
        plane: ControlPlane,
        emulator: EgainEmulator,
        api: Api,
        state_dir: Path,
        settings: Settings,
    ) -> None:
        self.plane, self.emulator, self.api, self.settings = plane, emulator, api, settings
        self.state_dir = state_dir
        self.audit = AuditLog(plane.audit_log)
        self.kubeconfig = operator_kubeconfig(plane, state_dir)
        self.run_id = secrets.token_hex(3)
        self.operators: list[OperatorProcess] = []
        self.watches: list[TokenWatch] = []

    async def close(self) -> None:
        """Stop every watch and operator started."""
        for watch in self.watches:
            await watch.stop()
        for operator in self.operators:
            operator.stop()

    # --- namespaces, clients, EgainTokens --------------------------------------

    def client(
        self, namespace: str, client_id: str, lifetime: int = 3600, expires_at: float | None = None
    ) -> Tenant:
        """A new eGain client, registered with the emulator, to be used in `namespace`.

        Its tokens live `lifetime` seconds, or all expire at `expires_at` (Unix time).
        """
        client = Tenant(namespace, client_id, secrets.token_urlsafe(32))
        self.emulator.register_client(
            client.client_id, client.client_secret, TENANT, [SCOPE], lifetime, expires_at=expires_at
        )
        return client

    async def tenant(
        self, label: str, lifetime: int = 3600, expires_at: float | None = None
    ) -> Tenant:
        """A new namespace, client and credentials Secret."""
        tenant = self.client(f"bench-{label}-{self.run_id}", f"bench-{label}", lifetime, expires_at)
        await self.namespace(tenant.namespace)
        await self.credentials(tenant.namespace, tenant)
        return tenant

    async def namespace(self, name: str) -> None:
        """Create the namespace `name`."""
        await self.api.create(
            "/api/v1/namespaces", {"metadata": {"name": name}, "apiVersion": "v1"}
        )

    async def credentials(self, namespace: str, client: Tenant, name: str = CREDENTIALS) -> None:
        """A Secret `name` in `namespace` holding `client`'s id and secret."""
        await self.api.create(
            secrets_path(namespace),
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": name},
                "stringData": {
                    "client_id": client.client_id,
                    "client_secret": client.client_secret,
                },
            },
        )

    def token_body(
        self, name: str, labels: dict[str, str] | None = None, **spec: Any
    ) -> dict[str, Any]:
        """An EgainToken of the ClientApp flow, with `spec` on top."""
        return {
            "apiVersion": "egain.cloud/v1alpha1",
            "kind": "EgainToken",
            "metadata": {"name": name, "labels": labels or {}},
            "spec": {
                "tokenUrl": self.emulator.client_app_token_url(TENANT),
                "scopes": [SCOPE],
                "credentialsSecretRef": {"name": CREDENTIALS},
                # Every token of a row makes the same request: shared, they would
                # cost one request for all, and the rows measure each one's own.
                "tokenSharing": "Disabled",
                **spec,
            },
        }

    async def create_tokens(
        self,
        tenant: Tenant,
        names: Iterable[str],
        labels: Callable[[int], dict[str, str]] | None = None,
        **spec: Any,
    ) -> None:
        """Create EgainTokens, `CREATE_CONCURRENCY` at a time; the `i`th has `labels(i)`."""
        bodies = (
            self.token_body(name, labels(i) if labels else None, **spec)
            for i, name in enumerate(names)
        )
        await self.api.create_all(tokens_path(tenant.namespace), bodies, CREATE_CONCURRENCY)

    def token_requests(self, tenant: Tenant) -> int:
        """Token requests of `tenant`'s client since the emulator's last reset."""
        return len(self.emulator.requests(tenant.client_id))

    # --- operators and watches ---------------------------------------------------

    def operator(self, namespaces: Iterable[str], *flags: str) -> OperatorProcess:
        """An operator (not started) serving `namespaces` (every namespace if none)."""
        operator = OperatorProcess(
            self.plane,
            self.state_dir / f"operator-{len(self.operators)}.log",
            [
                *(flag for namespace in namespaces for flag in ("--namespace", namespace)),
                "--allowed-token-hosts", f"localhost:{self.emulator.port}",
                "--ca-bundle", str(self.emulator.ca_file),
                "--max-concurrent-requests", str(self.settings.max_concurrent_requests),
                *flags,
            ],
            kubeconfig=self.kubeconfig,
        )  # fmt: skip
        self.operators.append(operator)
        return operator

    async def watch(self, namespace: str | None, selector: str = "") -> TokenWatch:
        """A started watch on the EgainTokens of `namespace` (of all for None)."""
        watch = TokenWatch(self.api, namespace, selector)
        self.watches.append(watch)
        await watch.start()
        return watch

    async def serve(self, tenant: Tenant, *flags: str) -> Running:
        """Start an operator for `tenant` and a watch on its EgainTokens."""
        operator = self.operator([tenant.namespace], *flags)
        operator.launch()
        await operator.wait_healthy()
        return Running(tenant, operator, await self.watch(tenant.namespace))

    async def stop(self, running: Running) -> None:
        """Stop `running`'s operator and watch."""
        running.operator.stop()
        await running.watch.stop()
