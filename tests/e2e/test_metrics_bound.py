"""Editing `tokenUrl` through many allowed hosts adds no request-duration series.

`egain_token_request_duration_seconds` is labelled by the allow-list entry a
request's URL matched, not by its host (README.md, "Metrics"): an EgainToken
whose `tokenUrl` is edited through 25 distinct hosts, all allowed by one
wildcard entry, leaves series bounded by the allow-list's entries, not one per
host. The hosts are loopback addresses (127.N.0.1, one entry `*.0.1:PORT`
allows them all) where nothing listens: each request is refused at connect,
which is observed like any other (status `error`).
"""

from __future__ import annotations

import re

import pytest

from testground.emulator import EgainEmulator
from tests.e2e.conftest import TENANT, MakeClient, StartOperator, client_app_spec
from tests.e2e.support import Cluster, egain_token, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

EDITS = 25
_SERIES = re.compile(r"^egain_token_request_duration_seconds_count\{([^}]*)\}", re.MULTILINE)
_HOST = re.compile(r'host="([^"]*)"')


def test_token_url_edits_through_allowed_hosts_leave_bounded_series(
    cluster: Cluster,
    namespace: str,
    emulator: EgainEmulator,
    make_client: MakeClient,
    start_operator: StartOperator,
) -> None:
    port = emulator.port
    entries = [f"localhost:{port}", f"*.0.1:{port}"]
    operator = start_operator(allowed_hosts=",".join(entries))
    client = make_client()

    for index in range(1, EDITS + 2):  # created at the first host, then 25 edits
        host = f"127.{index}.0.1"
        url = f"https://{host}:{port}/system/auth/{TENANT}-U/oauth2/token"
        cluster.apply(
            egain_token(namespace, "hosts", client_app_spec(emulator, client, tokenUrl=url))
        )

        def failed_at(host: str = host) -> bool:
            ready = cluster.ready(namespace, "hosts") or {}
            return host in (ready.get("message") or "")

        wait_until(failed_at, f"a request to {host} to fail")

    series = _SERIES.findall(operator.metrics())
    hosts = sorted({match for labels in series for match in _HOST.findall(labels)})
    print(
        f"{EDITS} edits through {EDITS + 1} hosts: {len(series)} request-duration series, "
        f"host labels {hosts}"
    )
    assert hosts == [f"*.0.1:{port}"]
    assert len(series) <= len(entries)
