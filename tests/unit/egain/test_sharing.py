"""One upstream token for identical requests: the key, the group, the decision."""

from __future__ import annotations

import asyncio
import functools
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pytest

from egain_token_operator.decisions.checks import Snapshot
from egain_token_operator.decisions.policy import Memory, Plan, plan
from egain_token_operator.decisions.reasons import TokenEndpointUnavailableError
from egain_token_operator.decisions.schedule import StoredToken, refresh_at, stable_fraction
from egain_token_operator.decisions.schema import InvalidSpecError
from egain_token_operator.decisions.timestamps import rfc3339
from egain_token_operator.decisions.tokenspec import TokenSharing, parse_spec
from egain_token_operator.egain.request import ClientCredentials, TokenRequest, build_request
from egain_token_operator.egain.sharing import SharedTokens
from tests.unit.egain.samples import ORIGIN
from tests.unit.samples import NOW, POLICY, token

URL = "https://ai.egain.cloud/system/auth/T-U/oauth2/token"
CREDENTIALS = ClientCredentials("id", "s3cret", ORIGIN)


def spec(**overrides: Any) -> dict[str, Any]:
    return {
        "tokenUrl": URL,
        "scopes": ["a", "b"],
        "credentialsSecretRef": {"name": "creds"},
        **overrides,
    }


def request(
    credentials: ClientCredentials = CREDENTIALS, name: str = "t", **overrides: Any
) -> TokenRequest:
    return build_request(parse_spec(name, spec(**overrides)), credentials)


# --- the key ------------------------------------------------------------------


class TestSharingKey:
    def test_equal_whatever_the_scope_order_name_or_secret_written(self) -> None:
        first = request(name="one", scopes=["a", "b"])
        second = request(name="two", scopes=["b", "a", "a"], secretName="elsewhere")
        assert first.sharing_key is not None
        assert first.sharing_key == second.sharing_key
        # The fingerprint counts the order of the scopes as sent.
        assert first.fingerprint != second.fingerprint

    @pytest.mark.parametrize(
        ("credentials", "overrides"),
        [
            (CREDENTIALS, {"tokenUrl": URL + "?tenant=2"}),
            (CREDENTIALS, {"tokenUrl": URL.replace("T-U", "T-V")}),
            (CREDENTIALS, {"scopes": ["a"]}),
            (CREDENTIALS, {"scopes": ["a", "b", "c"]}),
            (ClientCredentials("other-id", "s3cret", ORIGIN), {}),
            (ClientCredentials("id", "other-secret", ORIGIN), {}),
            (CREDENTIALS, {"flow": "AnonymousCustomer", "tenantId": "T"}),
        ],
    )
    def test_differs_when_what_is_sent_differs(
        self, credentials: ClientCredentials, overrides: dict[str, Any]
    ) -> None:
        assert request(credentials, **overrides).sharing_key != request().sharing_key

    def test_does_not_show_the_secret(self) -> None:
        key = request().sharing_key
        assert key is not None and "s3cret" not in key
        assert "s3cret" not in repr(request())

    def test_opting_out_leaves_no_key(self) -> None:
        assert request(tokenSharing="Disabled").sharing_key is None
        assert request(tokenSharing="Shared").sharing_key is not None

    def test_token_sharing_is_parsed(self) -> None:
        assert parse_spec("t", spec()).token_sharing is TokenSharing.SHARED
        assert parse_spec("t", spec(tokenSharing="Disabled")).token_sharing is TokenSharing.DISABLED
        with pytest.raises(InvalidSpecError, match=r"spec\.tokenSharing"):
            parse_spec("t", spec(tokenSharing="Sometimes"))


# --- the group ----------------------------------------------------------------


def issued(at: datetime = NOW, access_token: str = "opaque") -> StoredToken:
    return replace(token(issued=at), access_token=access_token)


class TestSharedTokens:
    def test_concurrent_fetches_send_one_request_and_wake_the_others(self) -> None:
        async def scenario() -> None:
            tokens = SharedTokens()
            woken: list[str] = []
            for member in ("a", "b", "c", "idle"):
                tokens.enroll(("ns", member), "k", functools.partial(woken.append, member))
            release, sent = asyncio.Event(), []

            async def send() -> StoredToken:
                sent.append(1)
                await release.wait()
                return issued()

            assert not tokens.in_flight("k")
            fetches = [
                asyncio.create_task(tokens.fetch(("ns", m), "k", send)) for m in ("a", "b", "c")
            ]
            await asyncio.sleep(0)
            assert tokens.in_flight("k")
            release.set()
            results = await asyncio.gather(*fetches)
            assert len(sent) == 1
            assert results == [issued()] * 3
            assert not tokens.in_flight("k")
            assert tokens.latest("k") == issued()
            assert woken == ["idle"], "only the member that did not await it is woken"

        asyncio.run(scenario())

    def test_a_failure_is_the_failure_of_every_awaiting_member(self) -> None:
        async def scenario() -> None:
            tokens = SharedTokens()
            release = asyncio.Event()

            async def send() -> StoredToken:
                await release.wait()
                raise TokenEndpointUnavailableError("HTTP 503 from ai.egain.cloud")

            fetches = [asyncio.create_task(tokens.fetch(("ns", m), "k", send)) for m in ("a", "b")]
            await asyncio.sleep(0)
            release.set()
            results = await asyncio.gather(*fetches, return_exceptions=True)
            assert all(isinstance(r, TokenEndpointUnavailableError) for r in results)
            assert tokens.latest("k") is None

        asyncio.run(scenario())

    def test_a_cancelled_member_does_not_cancel_the_request_for_the_others(self) -> None:
        async def scenario() -> None:
            tokens = SharedTokens()
            tokens.enroll(("ns", "b"), "k", lambda: None)
            release = asyncio.Event()

            async def send() -> StoredToken:
                await release.wait()
                return issued()

            first = asyncio.create_task(tokens.fetch(("ns", "a"), "k", send))
            second = asyncio.create_task(tokens.fetch(("ns", "b"), "k", send))
            await asyncio.sleep(0)
            first.cancel()
            await asyncio.sleep(0)
            release.set()
            assert await second == issued()
            assert first.cancelled()

        asyncio.run(scenario())

    def test_without_a_key_every_fetch_sends(self) -> None:
        async def scenario() -> None:
            tokens, sent = SharedTokens(), []

            async def send() -> StoredToken:
                sent.append(1)
                await asyncio.sleep(0)
                return issued()

            await asyncio.gather(*(tokens.fetch(("ns", m), None, send) for m in ("a", "b")))
            assert len(sent) == 2
            assert tokens.latest(None) is None

        asyncio.run(scenario())

    def test_keeps_the_newest_token(self) -> None:
        async def scenario() -> None:
            tokens = SharedTokens()
            tokens.enroll(("ns", "a"), "k", lambda: None)

            async def send(at: datetime) -> StoredToken:
                return issued(at)

            await tokens.fetch(("ns", "a"), "k", lambda: send(NOW + timedelta(minutes=1)))
            await asyncio.sleep(0)
            await tokens.fetch(("ns", "a"), "k", lambda: send(NOW))
            await asyncio.sleep(0)
            latest = tokens.latest("k")
            assert latest is not None and latest.issued_at == NOW + timedelta(minutes=1)

        asyncio.run(scenario())

    def test_a_key_nobody_uses_is_dropped(self) -> None:
        async def scenario() -> None:
            tokens = SharedTokens()
            tokens.enroll(("ns", "a"), "k", lambda: None)
            tokens.enroll(("other", "b"), "k", lambda: None)

            async def send() -> StoredToken:
                return issued()

            await tokens.fetch(("ns", "a"), "k", send)
            await asyncio.sleep(0)
            tokens.leave(("ns", "a"))
            assert tokens.latest("k") is not None
            tokens.enroll(("other", "b"), "k2", lambda: None)  # its credentials changed
            assert tokens.latest("k") is None
            assert tokens._groups.keys() == {"k2"}
            tokens.enroll(("other", "b"), None, lambda: None)  # it opted out
            assert not tokens._groups and not tokens._key_of

        asyncio.run(scenario())


# --- the decision -------------------------------------------------------------

UID = "uid-1"
SPEC = parse_spec("t", spec())
SEEN = Snapshot(
    uid=UID,
    generation=1,
    refresh_request=None,
    spec=SPEC,
    fingerprint="mine",
    credentials_version="7",
)


def decide(
    own: StoredToken | None,
    shared: StoredToken | None,
    *,
    now: datetime = NOW,
    refresh_request: str | None = None,
    refresh_before: timedelta | None = None,
) -> Plan:
    snapshot = replace(
        SEEN,
        shared_token=shared,
        refresh_request=refresh_request,
        spec=replace(SPEC, refresh_before=refresh_before),
    )
    return plan(snapshot, Memory(own, None, looked=True), now, POLICY)


def refresh_time(stored: StoredToken, refresh_before: timedelta | None = None) -> datetime:
    jitter = stable_fraction(UID, rfc3339(stored.issued_at))
    return refresh_at(stored, refresh_before, POLICY, jitter)


class TestAdoption:
    def test_a_newer_shared_token_is_adopted_as_obtained_for_this_request(self) -> None:
        # At its own refresh time: 40 min after its issue (a third before expiry).
        own = token(issued=NOW - timedelta(minutes=40), fingerprint="mine", refresh_request="1")
        assert refresh_time(own) <= NOW
        shared = token(issued=NOW - timedelta(minutes=1), fingerprint="theirs", refresh_request="x")
        made = decide(own, shared, refresh_request="1")
        assert not made.request_token and made.shared
        assert made.token == replace(shared, fingerprint="mine", refresh_request="1")
        assert made.condition.status == "True"
        assert made.wake_at == refresh_time(made.token)

    def test_a_newer_token_is_not_taken_over_before_its_own_reasons(self) -> None:
        # Another sharer refreshed early (or was forced): this one's token is
        # valid and not due, so it keeps it (no Secret write, no restart)...
        own = token(issued=NOW - timedelta(minutes=10), fingerprint="mine")
        shared = token(issued=NOW - timedelta(minutes=1), fingerprint="theirs")
        made = decide(own, shared)
        assert not made.request_token and not made.shared
        assert made.token == own and made.wake_at == refresh_time(own)
        # ...and takes it over at its own refresh time, or when its own refresh
        # is forced with the value the shared token answered.
        assert decide(own, shared, now=refresh_time(own)).shared
        answering = replace(shared, refresh_request="bulk")
        assert decide(own, answering, refresh_request="bulk").shared

    def test_a_first_look_adopts_instead_of_requesting(self) -> None:
        made = decide(None, token(fingerprint="theirs"))
        assert not made.request_token and made.shared
        assert made.reported_token is not None and made.reported_token.fingerprint == "mine"

    def test_a_token_for_stale_credentials_is_replaced_by_the_shared_one(self) -> None:
        own = token(fingerprint="before-rotation")
        made = decide(own, token(issued=NOW - timedelta(minutes=5), fingerprint="theirs"))
        assert not made.request_token and made.shared

    @pytest.mark.parametrize(
        ("own", "shared"),
        [
            # The same token (already adopted, or the one it requested itself).
            (token(fingerprint="mine"), token(fingerprint="theirs")),
            # An older one.
            (token(fingerprint="mine"), token(issued=NOW - timedelta(minutes=5))),
            # An expired one.
            (None, token(issued=NOW - timedelta(hours=2))),
        ],
    )
    def test_no_adoption_of_what_is_not_newer_and_valid(
        self, own: StoredToken | None, shared: StoredToken
    ) -> None:
        assert not decide(own, shared).shared

    def test_a_forced_refresh_requests_instead_of_adopting(self) -> None:
        own = token(issued=NOW - timedelta(minutes=10), fingerprint="mine")
        made = decide(own, token(fingerprint="theirs", refresh_request="1"), refresh_request="2")
        assert made.request_token and not made.shared

    def test_a_token_answering_the_same_refresh_request_answers_it_here_too(self) -> None:
        # One value set on many (a bulk renew): the first sharer's request answers all.
        own = token(issued=NOW - timedelta(minutes=10), fingerprint="mine", refresh_request="1")
        shared = token(fingerprint="theirs", refresh_request="2")
        made = decide(own, shared, refresh_request="2")
        assert not made.request_token and made.shared
        assert made.token is not None and made.token.refresh_request == "2"

    def test_a_shared_token_already_due_here_is_not_adopted_but_requested_once(self) -> None:
        # Issued 30 min ago by a sharer with a short refreshBefore; this one
        # refreshes 45 min before expiry, so the token is past due for it.
        shared = token(issued=NOW - timedelta(minutes=30), fingerprint="theirs")
        assert refresh_time(shared, timedelta(minutes=45)) < NOW
        made = decide(None, shared, refresh_before=timedelta(minutes=45))
        assert made.request_token and not made.shared
        # The token it gets is not due for it: its next look waits.
        fresh = token(fingerprint="mine")
        later = decide(fresh, shared, refresh_before=timedelta(minutes=45))
        assert not later.request_token and not later.shared
        assert later.wake_at == refresh_time(fresh, timedelta(minutes=45)) > NOW

    def test_without_a_shared_token_nothing_changes(self) -> None:
        made = decide(None, None)
        assert made.request_token and not made.shared
