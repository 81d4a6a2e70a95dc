"""Entra ID: MSAL discovers and gets a token; errors have Entra's shape; tokens expire and get revoked."""

from __future__ import annotations

import base64
import time
from urllib.parse import quote

import msal
import pytest

from mdca_emulator import MDCA_SCOPE
from tests.emulator.support import T0


def msal_app(tenant, secret=None):
    return msal.ConfidentialClientApplication(
        tenant.config.client_id,
        client_credential=secret or tenant.config.client_secret,
        authority=f"{tenant.emu.token_url}{tenant.id}",
        instance_discovery=False,
        http_client=tenant.session,
    )


def assert_entra_error(response, status, error, code, secret=None):
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == error
    assert body["error_codes"] == [code]
    assert body["error_description"].startswith(f"AADSTS{code}: ")
    assert body["timestamp"] and body["trace_id"] and body["correlation_id"]
    if secret:
        assert secret not in response.text


class TestMsal:
    def test_msal_discovers_the_tenant_and_gets_a_token_that_mdca_accepts(self, make_tenant):
        tenant = make_tenant(alerts={"segments": [{"start_ms": T0, "end_ms": T0 + 1_000, "count": 3}]})
        result = msal_app(tenant).acquire_token_for_client([MDCA_SCOPE])
        assert result.get("token_type") == "Bearer", result
        assert result["expires_in"] == 3599
        response = tenant.session.post(
            tenant.url("alerts"), json={}, headers={"Authorization": f"Bearer {result['access_token']}"}
        )
        assert response.status_code == 200 and len(response.json()["data"]) == 3

    def test_msal_returns_the_error_for_a_wrong_secret(self, make_tenant):
        tenant = make_tenant()
        result = msal_app(tenant, secret="not-the-secret").acquire_token_for_client([MDCA_SCOPE])
        assert result["error"] == "invalid_client"
        assert 7000215 in result["error_codes"]

    def test_discovery_document(self, make_tenant):
        tenant = make_tenant()
        discovery = f"{tenant.emu.token_url}{tenant.id}/v2.0/.well-known/openid-configuration"
        response = tenant.session.get(discovery)
        doc = response.json()
        root = f"{tenant.emu.base_url}/{tenant.id}"
        assert doc["token_endpoint"] == f"{root}/oauth2/v2.0/token"
        assert doc["issuer"] == f"{root}/v2.0"
        for key in (
            "authorization_endpoint",
            "jwks_uri",
            "device_authorization_endpoint",
            "end_session_endpoint",
        ):
            assert doc[key].startswith(root)
        assert doc["tenant_region_scope"] and "code" in doc["response_types_supported"]
        assert tenant.session.get(doc["jwks_uri"]).json() == {"keys": []}

    def test_unknown_tenant(self, emu, session):
        discovery = session.get(f"{emu.token_url}no-such-tenant/v2.0/.well-known/openid-configuration")
        assert_entra_error(discovery, 400, "invalid_tenant", 90002)
        token = session.post(f"{emu.token_url}no-such-tenant/oauth2/v2.0/token", data={"grant_type": "x"})
        assert_entra_error(token, 400, "invalid_request", 90002)


class TestTokenErrors:
    @pytest.mark.parametrize(
        ("form", "status", "error", "code"),
        [
            ({"client_id": "someone-else"}, 400, "unauthorized_client", 700016),
            ({"client_secret": "wrong"}, 401, "invalid_client", 7000215),
            ({"scope": "https://graph.microsoft.com/.default"}, 400, "invalid_scope", 70011),
            ({"grant_type": "password"}, 400, "unsupported_grant_type", 70003),
        ],
        ids=["unknown-client", "wrong-secret", "wrong-scope", "other-grant"],
    )
    def test_entra_error(self, make_tenant, form, status, error, code):
        tenant = make_tenant()
        response = tenant.token_response(**form)
        assert_entra_error(response, status, error, code, secret=tenant.config.client_secret)
        assert tenant.state.stats()["token_errors"] == 1

    @pytest.mark.parametrize(
        ("fault", "error", "code"),
        [
            (403, "unauthorized_client", 7000112),
            (500, "server_error", 50000),
            (503, "temporarily_unavailable", 90033),
        ],
    )
    def test_token_fault(self, make_tenant, fault, error, code):
        tenant = make_tenant(token_fault=fault)
        assert_entra_error(tenant.token_response(), fault, error, code)
        tenant.state.update(token_fault=None)
        assert tenant.token_response().status_code == 200

    def test_client_secret_basic_and_success_shape(self, make_tenant):
        tenant = make_tenant(token_lifetime_seconds=120)
        pair = f"{quote(tenant.config.client_id)}:{quote(tenant.config.client_secret)}".encode()
        response = tenant.session.post(
            f"{tenant.emu.token_url}{tenant.id}/oauth2/v2.0/token",
            data={"grant_type": "client_credentials", "scope": MDCA_SCOPE},
            headers={"Authorization": "Basic " + base64.b64encode(pair).decode()},
        )
        body = response.json()
        assert set(body) == {"token_type", "expires_in", "ext_expires_in", "access_token"}
        assert (body["token_type"], body["expires_in"], body["ext_expires_in"]) == ("Bearer", 120, 120)


class TestTokenLifecycle:
    def test_tokens_expire(self, make_tenant):
        tenant = make_tenant(token_lifetime_seconds=1)
        assert tenant.post("alerts").status_code == 200
        time.sleep(1.1)
        expired = tenant.post("alerts")
        assert expired.status_code == 401 and expired.json() == {"detail": "Invalid token"}
        tenant._token = None
        assert tenant.post("alerts").status_code == 200

    def test_revocation_after_n_successes_then_new_tokens_work(self, make_tenant):
        tenant = make_tenant(revoke_tokens_after=2)
        old = tenant.token()
        assert [tenant.post("alerts").status_code for _ in range(3)] == [200, 200, 401]
        tenant._token = None
        assert tenant.post("alerts").status_code == 200
        stale = tenant.session.post(tenant.url("alerts"), json={}, headers={"Authorization": f"Bearer {old}"})
        assert stale.status_code == 401
        stats = tenant.state.stats()
        assert (stats["tokens_issued"], stats["tokens_revoked"]) == (2, 1)
