"""The Secret's extra keys in the looks: rendered per EgainToken from the token it
holds, shared or not; rewritten when the outputs change, with no token request;
repaired after a hand edit; left alone by a restart when current."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

from tests.unit.controller.test_sharing_looks import Cluster


def keys(cluster: Cluster, namespace: str, name: str) -> dict[str, str]:
    data = cluster.kube.secrets[(namespace, name)]["data"]
    return {k: base64.b64decode(v).decode() for k, v in data.items()}


def versions(cluster: Cluster) -> dict[Any, str]:
    return {
        key: secret["metadata"]["resourceVersion"]
        for key, secret in cluster.kube.secrets.items()
        if key[1] != "creds"
    }


def change_spec(cluster: Cluster, key: tuple[str, str], **spec: Any) -> None:
    """An edit of the EgainToken's spec, as the watch brings it."""
    worker = cluster.workers[key]
    body = dict(worker.body)
    metadata = {**body["metadata"], "generation": body["metadata"]["generation"] + 1}
    worker.body = {**body, "metadata": metadata, "spec": {**body["spec"], **spec}}
    cluster.kube.tokens[key] = dict(worker.body)


def test_sharers_render_their_own_keys_and_output_changes_request_nothing() -> None:
    async def scenario() -> None:
        cluster = Cluster()
        dotenv = cluster.add("ns-1", "t", outputFormats=[{"type": "DotEnv"}])
        as_json = cluster.add(
            "ns-2",
            "t",
            outputFormats=[{"type": "JSON", "key": "config.json"}],
            secretTemplate={"data": {"header": "Authorization: ${authorization}"}},
        )
        await cluster.look(dotenv, as_json)
        await cluster.run_until(cluster.clock.now)
        assert len(cluster.egain.sent) == 1  # one token, shared
        first = keys(cluster, "ns-1", "t")
        second = keys(cluster, "ns-2", "t")
        assert first["access_token"] == second["access_token"] == "token-1"
        assert set(first) - set(second) == {"egain.env"}
        assert "EGAIN_ACCESS_TOKEN=token-1\n" in first["egain.env"]
        assert json.loads(second["config.json"])["accessToken"] == "token-1"
        assert second["header"] == "Authorization: Bearer token-1"

        # New outputs: the Secret rewritten from the token it holds, at once.
        change_spec(
            cluster,
            dotenv.key,
            outputFormats=[{"type": "EnvoyGatewayCredential"}],
            secretTemplate={"data": {"expiry": "${expiresAt}"}},
        )
        await cluster.look(dotenv)
        rewritten = keys(cluster, "ns-1", "t")
        assert len(cluster.egain.sent) == 1
        assert "egain.env" not in rewritten
        assert rewritten["credential"] == "Bearer token-1"
        assert rewritten["expiry"] == first["expires_at"]
        assert cluster.ready(dotenv.key) == "True"

        # A hand edit of a rendered key is repaired like the fixed keys.
        secret = cluster.kube.secrets[("ns-1", "t")]
        secret["data"]["credential"] = base64.b64encode(b"Bearer forged").decode()
        await cluster.look(dotenv)
        assert keys(cluster, "ns-1", "t")["credential"] == "Bearer token-1"
        assert len(cluster.egain.sent) == 1

        # A restart writes nothing while the keys are current.
        before = versions(cluster)
        cluster.restart()
        await cluster.look(*cluster.workers.values())
        assert versions(cluster) == before
        assert len(cluster.egain.sent) == 1

    asyncio.run(scenario())
