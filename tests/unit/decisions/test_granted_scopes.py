"""What is granted, not only what is asked: a token response granting a scope
outside the client's `allowedScopes` is refused (`granted_scope_not_allowed`),
its token never used, and the refusal held back like eGain's own failures."""

from dataclasses import replace
from datetime import timedelta

import pytest

from egain_token_operator.decisions.checks import Snapshot, granted_scope_not_allowed
from egain_token_operator.decisions.clients import ClientSpec
from egain_token_operator.decisions.policy import Memory, after_fetch, plan
from egain_token_operator.decisions.readback import recorded_failure
from egain_token_operator.decisions.reasons import Reason
from egain_token_operator.decisions.render import render_status
from egain_token_operator.decisions.schedule import StoredToken
from tests.unit.decisions.test_clients_policy import cluster_client, snapshot
from tests.unit.samples import NOW, POLICY, token

READ = "knowledge.portalmgr.read"
PREFIX = "https://api.ai.egain.cloud/auth/"
ANONYMOUS = {"flow": "AnonymousCustomer", "tenantId": "T-U"}


@pytest.mark.parametrize(
    ("client", "granted", "outside"),
    [
        # No client, or a client without allowedScopes: anything granted is taken.
        (None, (READ, "core.admin"), None),
        (cluster_client(), (READ, "core.admin"), None),
        # Within allowedScopes, in any order, or fewer than asked.
        (cluster_client(allowedScopes=[READ, "b"]), ("b", READ), None),
        (cluster_client(allowedScopes=[READ, "b"]), (), None),
        # Beyond it: said by name, one or several.
        (cluster_client(allowedScopes=[READ]), (READ, "core.admin"), "scope core.admin"),
        (
            cluster_client(allowedScopes=[READ]),
            ("https://graph.microsoft.com/.default", "core.admin"),
            "scopes https://graph.microsoft.com/.default core.admin",
        ),
        # AnonymousCustomer compares scopes as sent: prefixed, whichever form comes back.
        (cluster_client(allowedScopes=[READ], **ANONYMOUS), (PREFIX + READ,), None),
        (cluster_client(allowedScopes=[READ], **ANONYMOUS), (READ,), None),
        (
            cluster_client(allowedScopes=[READ], **ANONYMOUS),
            (PREFIX + "core.admin",),
            f"scope {PREFIX}core.admin",
        ),
    ],
)
def test_granted_scopes_are_judged_against_allowed_scopes(
    client: ClientSpec | None, granted: tuple[str, ...], outside: str | None
) -> None:
    found = granted_scope_not_allowed(client, granted)
    if outside is None:
        assert found is None
        return
    assert found == (
        Reason.SCOPE_NOT_ALLOWED,
        f"the token response grants {outside}, which ClusterEgainClient portal does not "
        "allow (allowedScopes); the token is not used",
    )


def ready_to_request(client: ClientSpec) -> Snapshot:
    """A look that passed the local checks: the request is built."""
    return replace(snapshot(client), fingerprint="fp", credentials_version="7")


def granting(*scopes: str) -> StoredToken:
    return replace(token(), access_token="broader", scopes=scopes)


def test_a_token_granting_more_is_refused_and_the_previous_one_kept() -> None:
    seen = ready_to_request(cluster_client(allowedScopes=[READ]))
    previous = replace(token(NOW - timedelta(minutes=50)), scopes=(READ,))
    before = plan(seen, Memory(previous, None, looked=True), NOW, POLICY)
    assert before.request_token

    settled = after_fetch(seen, before, at=NOW, policy=POLICY, token=granting(READ, "core.admin"))
    assert settled.token == previous
    failure = settled.failure
    assert failure is not None and failure.answered
    assert failure.reason is Reason.SCOPE_NOT_ALLOWED
    assert "grants scope core.admin" in failure.message
    assert settled.failure_is_news
    assert failure.retry_at == NOW + POLICY.permanent_delay
    # The previous token is still valid: Ready as before, the refusal in lastFailure.
    assert settled.condition.status == "True"

    # Without a previous token: nothing is Ready, and the condition says why.
    first = plan(seen, Memory(), NOW, POLICY)
    settled = after_fetch(seen, first, at=NOW, policy=POLICY, token=granting(READ, "core.admin"))
    assert settled.token is None and settled.reported_token is None
    assert (settled.condition.status, settled.condition.reason) == ("False", "ScopeNotAllowed")
    assert "grants scope core.admin" in settled.condition.message


def test_a_token_granting_what_is_allowed_is_taken() -> None:
    seen = ready_to_request(cluster_client(allowedScopes=[READ]))
    first = plan(seen, Memory(), NOW, POLICY)
    settled = after_fetch(seen, first, at=NOW, policy=POLICY, token=granting(READ))
    assert settled.failure is None and settled.token == granting(READ)


def test_the_refusal_holds_the_next_request_back_unlike_a_refused_request() -> None:
    seen = ready_to_request(cluster_client(allowedScopes=[READ]))
    first = plan(seen, Memory(), NOW, POLICY)
    refused = after_fetch(seen, first, at=NOW, policy=POLICY, token=granting(READ, "core.admin"))
    later = NOW + timedelta(minutes=1)
    again = plan(seen, refused.memory, later, POLICY)
    assert not again.request_token
    assert again.why == "backing off after ScopeNotAllowed"
    assert plan(seen, refused.memory, NOW + POLICY.permanent_delay, POLICY).request_token

    # A refused *request* (found by the local check) is gone once the check passes.
    local = plan(snapshot(cluster_client(allowedScopes=["other"])), Memory(), NOW, POLICY)
    assert local.failure is not None and not local.failure.answered
    assert plan(seen, local.memory, later, POLICY).request_token


def test_the_refusal_holds_after_a_restart() -> None:
    seen = ready_to_request(cluster_client(allowedScopes=[READ]))
    refused = after_fetch(
        seen, plan(seen, Memory(), NOW, POLICY), at=NOW, policy=POLICY, token=granting("x")
    )
    status = render_status(
        generation=1,
        condition=refused.condition,
        previous_conditions=[],
        secret_name="t",
        token=None,
        next_refresh_at=refused.next_refresh_at,
        failure=refused.failure,
        now=NOW,
        client=None,
    )
    restored = recorded_failure(status, None)
    assert restored is not None and restored.answered
    after_restart = replace(seen, recorded_failure=restored, status_generation=1)
    later = NOW + timedelta(minutes=1)
    assert not plan(after_restart, Memory(), later, POLICY).request_token

    # A refused request records no credentials version (`observe` stops before
    # reading them): after a restart it is re-checked, not held back.
    unread = {**status, "lastFailure": {**status["lastFailure"], "credentialsVersion": None}}
    local = recorded_failure(unread, None)
    assert local is not None and not local.answered


def test_a_shared_token_granting_more_is_not_adopted() -> None:
    # Another EgainToken with the same credentials, through a client that allows
    # more, obtained a token this one's client does not allow: it requests its own.
    seen = ready_to_request(cluster_client(allowedScopes=[READ]))
    shared = replace(granting(READ, "core.admin"), issued_at=NOW - timedelta(seconds=5))
    adopted = plan(replace(seen, shared_token=shared), Memory(), NOW, POLICY)
    assert adopted.request_token and not adopted.shared
    allowed = replace(shared, scopes=(READ,))
    adopted = plan(replace(seen, shared_token=allowed), Memory(), NOW, POLICY)
    assert not adopted.request_token and adopted.shared
