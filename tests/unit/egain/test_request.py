"""Building token requests: the two flows, the form, the fingerprint."""

from dataclasses import replace
from urllib.parse import parse_qs, urlsplit

import pytest

from egain_token_operator.decisions.tokenspec import parse_spec
from egain_token_operator.egain.request import ClientCredentials, build_request
from tests.unit.egain.samples import ANONYMOUS, CLIENT_APP, CREDS, ORIGIN, SECRET


class TestRequestBuilding:
    def test_client_app_flow(self) -> None:
        request = build_request(CLIENT_APP, CREDS)
        assert request.url == "https://ai.egain.cloud/system/auth/TMPRODB88619984-U/oauth2/token"
        assert dict(request.form) == {
            "grant_type": "client_credentials",
            "scope": "knowledge.portalmgr.manage core.aiservices.read",
            "client_id": CREDS.client_id,
            "client_secret": SECRET,
        }

    def test_anonymous_customer_flow(self) -> None:
        request = build_request(ANONYMOUS, CREDS)
        parts = urlsplit(request.url)
        assert f"{parts.scheme}://{parts.netloc}{parts.path}" == (
            "https://api.ai.egain.cloud/core/authmgr/v3/oauth2/v2.0/anonymous/token"
        )
        assert parse_qs(parts.query) == {
            "user_type": ["customer"],
            "domain_hint": ["TMPRODB88619984"],
        }
        assert request.form["scope"] == (
            "https://api.ai.egain.cloud/auth/core.aiservices.read "
            "https://api.ai.egain.cloud/auth/core.aiservices.manage"
        )
        assert request.form["grant_type"] == "client_credentials"

    def test_custom_scope_prefix(self) -> None:
        spec = parse_spec(
            "t",
            {
                "flow": "AnonymousCustomer",
                "tenantId": "T1",
                "scopePrefix": "https://api.aidev.egain.cloud/auth/",
                "scopes": ["x.read"],
                "credentialsSecretRef": {"name": "c"},
            },
        )
        assert (
            build_request(spec, CREDS).form["scope"] == "https://api.aidev.egain.cloud/auth/x.read"
        )

    def test_fingerprint_changes_with_the_spec(self) -> None:
        base = build_request(CLIENT_APP, CREDS).fingerprint
        assert base != build_request(ANONYMOUS, CREDS).fingerprint
        reordered = replace(CLIENT_APP, scopes=tuple(reversed(CLIENT_APP.scopes)))
        assert base != build_request(reordered, CREDS).fingerprint
        url = CLIENT_APP.token_url.replace("ai.", "eu.ai.")
        moved = replace(CLIENT_APP, issuer=replace(CLIENT_APP.issuer, token_url=url))
        assert base != build_request(moved, CREDS).fingerprint
        assert len(base) == 64

    @pytest.mark.parametrize(
        "field",
        ["namespace", "name", "uid", "resource_version", "client_id_key", "client_secret_key"],
    )
    def test_fingerprint_changes_with_where_the_credentials_were_read(self, field: str) -> None:
        # A rotation is an edit of the credentials Secret: a new resourceVersion.
        moved = replace(CREDS, origin=replace(ORIGIN, **{field: "other"}))
        assert build_request(CLIENT_APP, moved).fingerprint != (
            build_request(CLIENT_APP, CREDS).fingerprint
        )

    def test_fingerprint_is_no_function_of_the_credentials_values(self) -> None:
        # Written where the EgainToken's team reads it: no guess of the client
        # id or secret can be checked against it.
        base = build_request(CLIENT_APP, CREDS).fingerprint
        for guess in ("guess", SECRET[:-1], ""):
            assert (
                build_request(CLIENT_APP, replace(CREDS, client_secret=guess)).fingerprint == base
            )
            assert build_request(CLIENT_APP, replace(CREDS, client_id=guess)).fingerprint == base

    def test_legacy_fingerprint_is_what_earlier_releases_wrote(self) -> None:
        # Pinned from the releases before: a token stored under it is recognised.
        assert build_request(CLIENT_APP, CREDS).legacy_fingerprint == (
            "4ab93f60e8c7c5e8c9eb67c5e350ba87fefa64cb4315f7c19ad51c1b212d8762"
        )
        assert build_request(ANONYMOUS, CREDS).legacy_fingerprint == (
            "463b36fadd2a10cd0760b19d92772bf1b54b5c675941f3452146c602322244e5"
        )
        rotated = ClientCredentials(CREDS.client_id, "other", ORIGIN)
        assert build_request(CLIENT_APP, rotated).legacy_fingerprint != (
            build_request(CLIENT_APP, CREDS).legacy_fingerprint
        )

    def test_the_client_id_and_secret_are_never_echoed(self) -> None:
        assert set(build_request(CLIENT_APP, CREDS).secrets) == {CREDS.client_id, SECRET}

    def test_secrets_stay_out_of_repr(self) -> None:
        assert SECRET not in repr(CREDS)
        assert CREDS.client_id not in repr(CREDS)
        assert SECRET not in repr(build_request(CLIENT_APP, CREDS))
        assert CREDS.client_id not in repr(build_request(CLIENT_APP, CREDS))
