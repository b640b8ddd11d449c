"""Reading eGain's answer: error mapping, hostile tokens, plausible lifetimes, the capped body."""

import asyncio
import gzip
import json
from collections.abc import AsyncIterator

import httpx
import pytest

from egain_token_operator.decisions.hosts import HostAllowList
from egain_token_operator.decisions.reasons import (
    InvalidCredentialsError,
    InvalidRequestError,
    InvalidScopeError,
    InvalidTokenResponseError,
    RateLimitedError,
    Reason,
    TokenEndpointUnavailableError,
    TokenError,
    UnauthorizedClientError,
)
from egain_token_operator.egain.addresses import AddressGuard
from egain_token_operator.egain.request import build_request
from egain_token_operator.egain.response import (
    MAX_RESPONSE_BYTES,
    TokenResponse,
    parse_token_response,
    redact,
)
from egain_token_operator.egain.transport import EgainClient
from tests.unit.egain.samples import CLIENT_APP, CREDS, SECRET, TOKEN, client, resolves_publicly
from tests.unit.samples import NOW


def parse(
    status: int, body: object, headers: dict[str, str] | None = None, **kw: object
) -> TokenResponse:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    args: dict[str, object] = {
        "host": "ai.egain.cloud",
        "requested_scopes": ("a", "b"),
        "default_lifetime": 3600.0,
        "secrets": (SECRET,),
        "now": NOW,
    }
    args.update(kw)
    return parse_token_response(status, headers or {}, raw, **args)  # type: ignore[arg-type]


class TestResponseParsing:
    def test_success(self) -> None:
        got = parse(
            200, {"access_token": "T", "token_type": "Bearer", "expires_in": 3600, "scope": "a"}
        )
        assert got.access_token == "T"
        assert got.token_type == "Bearer"
        assert got.expires_in == 3600
        assert got.scopes == ("a",)
        assert not got.expires_in_defaulted

    def test_expires_in_as_numeric_string(self) -> None:
        got = parse(200, {"access_token": "T", "expires_in": "3600"})
        assert got.expires_in == 3600.0

    def test_missing_optional_fields_take_defaults(self) -> None:
        got = parse(200, {"access_token": "T"}, default_lifetime=1800.0)
        assert got.token_type == "Bearer"
        assert got.scopes == ("a", "b")
        assert got.expires_in == 1800.0
        assert got.expires_in_defaulted

    def test_opaque_non_jwt_token_is_fine(self) -> None:
        got = parse(200, {"access_token": "not.a-jwt at all?", "expires_in": 60})
        assert got.access_token == "not.a-jwt at all?"

    @pytest.mark.parametrize(
        "body",
        [
            b"<html>maintenance</html>",
            b"not json",
            b"",
            json.dumps([1, 2]).encode(),
            {"token_type": "Bearer", "expires_in": 3600},
            {"access_token": "", "expires_in": 3600},
            {"access_token": 42, "expires_in": 3600},
            {"access_token": "T", "expires_in": "soon"},
            {"access_token": "T", "expires_in": -5},
            {"access_token": "T", "expires_in": 0},
            {"access_token": "T", "expires_in": True},
            {"access_token": "T", "expires_in": "NaN"},
            {"access_token": "T", "expires_in": 3600, "token_type": 7},
        ],
    )
    def test_malformed_success_is_invalid_token_response(self, body: object) -> None:
        with pytest.raises(InvalidTokenResponseError) as caught:
            parse(200, body)
        assert caught.value.reason is Reason.INVALID_TOKEN_RESPONSE

    @pytest.mark.parametrize(
        ("status", "body", "error"),
        [
            (401, {"error": "invalid_client"}, InvalidCredentialsError),
            (401, b"", InvalidCredentialsError),
            (400, {"error": "invalid_client"}, InvalidCredentialsError),
            (400, {"error": "invalid_scope"}, InvalidScopeError),
            (400, {"error": "unauthorized_client"}, UnauthorizedClientError),
            (403, b"forbidden", UnauthorizedClientError),
            (400, {"error": "invalid_request"}, InvalidRequestError),
            (400, {"error": "unsupported_grant_type"}, InvalidRequestError),
            (404, b"<html>not found</html>", InvalidRequestError),
            (500, b"", TokenEndpointUnavailableError),
            (503, {"error": "temporarily_unavailable"}, TokenEndpointUnavailableError),
            (429, b"", RateLimitedError),
            (302, b"", InvalidTokenResponseError),
        ],
    )
    def test_errors_map_onto_ready_reasons(
        self, status: int, body: object, error: type[TokenError]
    ) -> None:
        with pytest.raises(error):
            parse(status, body)

    def test_retry_after_seconds_and_date(self) -> None:
        with pytest.raises(RateLimitedError) as caught:
            parse(429, b"", {"retry-after": "17"})
        assert caught.value.retry_after == 17.0
        with pytest.raises(TokenEndpointUnavailableError) as unavailable:
            parse(503, b"", {"retry-after": "Mon, 23 Nov 2026 21:01:00 GMT"})
        assert unavailable.value.retry_after == 60.0

    def test_echoed_secret_is_redacted_from_messages(self) -> None:
        body = {"error": "invalid_client", "error_description": f"bad secret {SECRET} for client"}
        with pytest.raises(InvalidCredentialsError) as caught:
            parse(401, body)
        assert SECRET not in str(caught.value)
        assert "[redacted]" in str(caught.value)
        assert "HTTP 401 from ai.egain.cloud" in str(caught.value)

    def test_a_secret_holding_another_is_redacted_whole(self) -> None:
        # Replacing the shorter first would leave the secret's other parts.
        client_id, secret = "portal", "xq7portal9zk"
        for secrets in ((client_id, secret), (secret, client_id)):
            assert redact(f"{secret} / {client_id}", secrets) == "[redacted] / [redacted]"

    def test_echoed_control_characters_never_reach_a_message(self) -> None:
        body = {"error": "invalid_request", "error_description": "a\x1b[2Jb\r\nc\x00d\u202ee"}
        with pytest.raises(InvalidRequestError) as caught:
            parse(400, body)
        assert (
            caught.value.message == "HTTP 400 from ai.egain.cloud: invalid_request (a [2Jb c d e)"
        )


class TestHostileResponses:
    @pytest.mark.parametrize(
        "token",
        [
            f"{TOKEN}\r\nX-Injected: yes",
            f"{TOKEN}\nsecond-line",
            f"{TOKEN}\x00",
            f"\x1b[31m{TOKEN}",
            f"{TOKEN}\x7f",
            f"{TOKEN}\u00e9",
            f"{TOKEN}\u2028more",
        ],
    )
    def test_a_token_that_would_break_an_http_header_is_refused(self, token: str) -> None:
        with pytest.raises(InvalidTokenResponseError) as caught:
            parse(200, {"access_token": token, "expires_in": 3600})
        assert "cannot go in an HTTP header" in caught.value.message
        assert TOKEN not in caught.value.message

    def test_surrounding_whitespace_is_trimmed(self) -> None:
        assert parse(200, {"access_token": f"\n {TOKEN}\r\n"}).access_token == TOKEN

    @pytest.mark.parametrize("token_type", ["Bearer\r\nX-Injected: yes", "Bear er", "Bearer\x00"])
    def test_a_token_type_that_is_no_auth_scheme_is_refused(self, token_type: str) -> None:
        with pytest.raises(InvalidTokenResponseError, match="token_type"):
            parse(200, {"access_token": TOKEN, "token_type": token_type})

    def test_granted_scopes_must_be_visible_ascii(self) -> None:
        with pytest.raises(InvalidTokenResponseError, match="scope"):
            parse(200, {"access_token": TOKEN, "scope": "a \x1b[2Jb"})

    @pytest.mark.parametrize(
        ("expires_in", "message"),
        [
            (-5, "expires_in -5s is shorter than 1s"),
            ("-5", "expires_in -5s is shorter than 1s"),
            (0, "expires_in 0s is shorter than 1s"),
            (0.5, "expires_in 0.5s is shorter than 1s"),
            ("0.5", "expires_in 0.5s is shorter than 1s"),
            (1e12, "expires_in is more than 31622400s (366 days)"),
            (10**400, "expires_in is more than 31622400s (366 days)"),
            ("1e999", "expires_in is more than 31622400s (366 days)"),
            ("NaN", "expires_in is not a number"),
            (b"NaN", "expires_in is not a number"),
            (b"Infinity", "expires_in is more than 31622400s (366 days)"),
            ("inf", "expires_in is not a number"),
            ("0x10", "expires_in is not a number"),
            (True, "expires_in is not a number"),
            ([3600], "expires_in is not a number"),
        ],
    )
    def test_an_implausible_lifetime_is_refused_with_its_reason(
        self, expires_in: object, message: str
    ) -> None:
        body: object = {"access_token": TOKEN, "expires_in": expires_in}
        if isinstance(expires_in, bytes):  # a JSON literal Python's json reads
            body = b'{"access_token": "' + TOKEN.encode() + b'", "expires_in": ' + expires_in + b"}"
        with pytest.raises(InvalidTokenResponseError) as caught:
            parse(200, body)
        assert caught.value.message == f"HTTP 200 from ai.egain.cloud: {message}"

    @pytest.mark.parametrize(
        ("expires_in", "seconds"),
        [
            (3599.5, 3599.5),
            ("3600.25", 3600.25),
            (" 60 ", 60.0),
            (1, 1.0),
            ("31622400", 31622400.0),
        ],
    )
    def test_plausible_lifetimes_in_any_form(self, expires_in: object, seconds: float) -> None:
        assert parse(200, {"access_token": TOKEN, "expires_in": expires_in}).expires_in == seconds

    @pytest.mark.parametrize(
        "body",
        [
            b"[" * 100_000,
            b'{"access_token": "T", "extra": ' + b"[" * 30_000 + b"]" * 30_000 + b"}",
            b'{"access_token": "T", "extra": ' + b'{"a":' * 20_000 + b"1" + b"}" * 20_001,
        ],
    )
    def test_deeply_nested_json_is_refused(self, body: bytes) -> None:
        with pytest.raises(InvalidTokenResponseError, match="nested too deeply"):
            parse(200, body)

    def test_a_body_left_unread_is_refused_on_success_only(self) -> None:
        with pytest.raises(InvalidTokenResponseError, match="larger than 64 KiB"):
            parse(200, b"", unread="the body is larger than 64 KiB")
        with pytest.raises(InvalidCredentialsError):
            parse(401, b"", unread="the body is larger than 64 KiB")


class TestResponseBody:
    """The body is streamed and read up to `MAX_RESPONSE_BYTES`, never further."""

    def fetch(self, response: httpx.Response) -> Exception:
        async def go() -> Exception:
            egain = client(httpx.MockTransport(lambda request: response))
            try:
                await egain.fetch_token(build_request(CLIENT_APP, CREDS), namespace="team")
            except TokenError as error:
                return error
            finally:
                await egain.aclose()
            raise AssertionError("no error")

        return asyncio.run(go())

    def test_a_multi_megabyte_body_is_not_read(self) -> None:
        sent: list[int] = []

        async def chunks() -> AsyncIterator[bytes]:
            yield b'{"access_token": "' + TOKEN.encode() + b'", "padding": "'
            for _ in range(5 * 1024):  # 5 MiB, no Content-Length
                sent.append(1024)
                yield b"x" * 1024
            yield b'"}'

        error = self.fetch(httpx.Response(200, content=chunks()))
        assert isinstance(error, InvalidTokenResponseError)
        assert error.message == "HTTP 200 from ai.egain.cloud: the body is larger than 64 KiB"
        assert sum(sent) <= MAX_RESPONSE_BYTES + 1024

    def test_a_declared_length_over_the_cap_is_not_read(self) -> None:
        async def never() -> AsyncIterator[bytes]:
            raise AssertionError("read")
            yield b""

        response = httpx.Response(200, headers={"Content-Length": "5000000"}, content=never())
        assert "larger than 64 KiB" in str(self.fetch(response))

    def test_a_compressed_body_is_not_unpacked(self) -> None:
        body = gzip.compress(json.dumps({"access_token": TOKEN, "pad": "0" * 10**7}).encode())
        response = httpx.Response(200, headers={"Content-Encoding": "gzip"}, content=body)
        error = self.fetch(response)
        assert isinstance(error, InvalidTokenResponseError)
        assert "compressed (gzip), which was not asked for" in error.message

    def test_an_oversized_error_page_still_maps_by_status(self) -> None:
        error = self.fetch(httpx.Response(503, content=b"<html>" + b"x" * 10**6))
        assert isinstance(error, TokenEndpointUnavailableError)

    def test_identity_encoding_is_asked_for(self) -> None:
        seen: list[httpx.Request] = []

        def handler(request: httpx.Request) -> httpx.Response:
            seen.append(request)
            return httpx.Response(200, json={"access_token": TOKEN})

        async def go() -> None:
            egain = client(httpx.MockTransport(handler))
            await egain.fetch_token(build_request(CLIENT_APP, CREDS), namespace="team")
            await egain.aclose()

        asyncio.run(go())
        assert seen[0].headers["accept-encoding"] == "identity"

    def test_a_trickled_answer_is_cut_at_the_timeout(self) -> None:
        async def trickle() -> AsyncIterator[bytes]:
            yield b'{"access_token": "'
            await asyncio.Event().wait()  # the rest never comes
            yield b'"}'

        async def go() -> None:
            handler = httpx.MockTransport(lambda request: httpx.Response(200, content=trickle()))
            egain = EgainClient(
                allowed_hosts=HostAllowList.parse("*.egain.cloud"),
                ca_bundle=None,
                timeout=0.1,
                max_concurrent_requests=1,
                default_lifetime=3600.0,
                guard=AddressGuard(resolver=resolves_publicly),
                transport=handler,
            )
            with pytest.raises(TokenEndpointUnavailableError) as caught:
                await egain.fetch_token(build_request(CLIENT_APP, CREDS), namespace="team")
            await egain.aclose()
            assert caught.value.message == "timed out talking to ai.egain.cloud"

        asyncio.run(go())
