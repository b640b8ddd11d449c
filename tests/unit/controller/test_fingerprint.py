"""The request fingerprint on the managed Secret: never a function of the
credentials' values, still new at every rotation, and a token stored under the
fingerprint of earlier releases kept across the upgrade."""

from __future__ import annotations

import copy
from datetime import timedelta
from typing import Any, cast

from egain_token_operator.controller.observe import TokenWorker
from egain_token_operator.decisions.render import FINGERPRINT_ANNOTATION, Owner, render_secret
from egain_token_operator.decisions.schedule import StoredToken
from egain_token_operator.decisions.tokenspec import parse_spec
from egain_token_operator.egain.credentials import read_credentials
from egain_token_operator.egain.request import TokenRequest, build_request
from tests.unit.controller.support import (
    BODY,
    START,
    b64,
    controller,
    look,
    ready,
    setup,
)
from tests.unit.fakes import FakeKube

SPEC = parse_spec("portal", cast(dict[str, Any], BODY["spec"]))


def credentials(secret: str, version: str) -> dict[str, Any]:
    return {
        "metadata": {"namespace": "ns", "name": "creds", "uid": "c-1", "resourceVersion": version},
        "data": {"client_id": b64("portal-id"), "client_secret": b64(secret)},
    }


def request_for(kube: FakeKube) -> TokenRequest:
    return build_request(SPEC, read_credentials(kube.secrets[("ns", "creds")], SPEC.credentials))


def fingerprint(kube: FakeKube) -> str:
    return str(kube.secrets[("ns", "portal")]["metadata"]["annotations"][FINGERPRINT_ANNOTATION])


def access_token(kube: FakeKube) -> str:
    return str(kube.secrets[("ns", "portal")]["data"]["access_token"])


def test_a_token_stored_under_the_legacy_fingerprint_survives_the_upgrade() -> None:
    kube, egain, clock = setup()
    kube.secrets[("ns", "creds")] = credentials("s3cret", "5")
    request = request_for(kube)
    stored = StoredToken(
        access_token="stored-before-the-upgrade",
        token_type="Bearer",
        scopes=request.scopes,
        issued_at=START - timedelta(minutes=5),
        expires_at=START + timedelta(minutes=55),
        fingerprint=request.legacy_fingerprint,
        refresh_request=None,
    )
    kube.secrets[("ns", "portal")] = render_secret(stored, SPEC, Owner("ns", "portal", "uid-1"))
    kept = access_token(kube)
    made, events = controller(kube, egain, clock)
    worker = TokenWorker(("ns", "portal"), copy.deepcopy(BODY))

    refresh = look(made, worker)
    # Nothing requested, the token kept; the legacy value, a function of the
    # client secret, replaced at once by the current fingerprint.
    assert egain.requests == 0 and events == []
    assert ready(kube) == ("True", "TokenIssued")
    assert access_token(kube) == kept
    assert fingerprint(kube) == request.fingerprint != request.legacy_fingerprint

    assert refresh is not None
    clock.now = refresh
    look(made, worker)
    assert egain.requests == 1 and access_token(kube) == b64("token-1")
    assert fingerprint(kube) == request.fingerprint


def test_a_legacy_fingerprint_of_other_credentials_gets_a_new_token() -> None:
    kube, egain, clock = setup()
    kube.secrets[("ns", "creds")] = credentials("before", "5")
    before = request_for(kube)
    stored = StoredToken(
        access_token="stored-before-the-upgrade",
        token_type="Bearer",
        scopes=before.scopes,
        issued_at=START - timedelta(minutes=5),
        expires_at=START + timedelta(minutes=55),
        fingerprint=before.legacy_fingerprint,
        refresh_request=None,
    )
    kube.secrets[("ns", "portal")] = render_secret(stored, SPEC, Owner("ns", "portal", "uid-1"))
    kube.secrets[("ns", "creds")] = credentials("rotated", "6")
    made, _ = controller(kube, egain, clock)
    look(made, TokenWorker(("ns", "portal"), copy.deepcopy(BODY)))
    assert egain.requests == 1 and access_token(kube) == b64("token-1")
    assert fingerprint(kube) == request_for(kube).fingerprint


def test_the_written_fingerprint_names_the_credentials_version_not_their_values() -> None:
    kube, egain, clock = setup()
    kube.secrets[("ns", "creds")] = credentials("s3cret", "5")
    made, _ = controller(kube, egain, clock)
    worker = TokenWorker(("ns", "portal"), copy.deepcopy(BODY))
    look(made, worker)
    written = fingerprint(kube)
    # The same request with any other secret at the same version: the same
    # fingerprint, so a guess cannot be checked against it.
    kube.secrets[("ns", "creds")] = credentials("a guess", "5")
    assert request_for(kube).fingerprint == written

    # A rotation is an edit: a new resourceVersion, a new token at once.
    kube.secrets[("ns", "creds")] = credentials("rotated", "6")
    look(made, worker)
    assert egain.requests == 2 and access_token(kube) == b64("token-2")
    assert fingerprint(kube) != written
