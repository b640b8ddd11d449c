"""Building token requests: the two flows, the form, the fingerprint."""

from urllib.parse import parse_qs, urlsplit

from egain_token_operator.decisions.tokenspec import parse_spec
from egain_token_operator.egain.request import ClientCredentials, build_request
from tests.unit.egain.samples import ANONYMOUS, CLIENT_APP, CREDS, SECRET


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

    def test_fingerprint_changes_with_every_input_and_hides_the_secret(self) -> None:
        base = build_request(CLIENT_APP, CREDS).fingerprint
        rotated = build_request(CLIENT_APP, ClientCredentials(CREDS.client_id, "other")).fingerprint
        assert base != rotated
        assert base != build_request(ANONYMOUS, CREDS).fingerprint
        assert SECRET not in base
        assert len(base) == 64

    def test_secrets_stay_out_of_repr(self) -> None:
        assert SECRET not in repr(CREDS)
        assert SECRET not in repr(build_request(CLIENT_APP, CREDS))
