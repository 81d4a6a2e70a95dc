"""Connection validation, the error tree and redaction."""

from __future__ import annotations

import pickle

import pytest

from airflow_provider_mdca.client.ratelimit import RateLimiter
from airflow_provider_mdca.connections.mdca import MdcaConfig
from airflow_provider_mdca.errors import InitVariablesError, PullError, SetupError
from airflow_provider_mdca.redaction import redact_text, register_secret, sanitize_url

GOOD = {
    "host": "https://t.portal.cloudappsecurity.com",
    "login": "cid",
    "password": "pw-secret-1",
    "extra": {"tenant_id": "tid"},
}


def config(**changes):
    fields = {**GOOD, **changes}
    return MdcaConfig.from_connection(**fields)


def test_a_complete_connection_gives_defaults():
    cfg = config()
    assert cfg.base_url == "https://t.portal.cloudappsecurity.com/"
    assert cfg.authority == "https://login.microsoftonline.com/tid"
    assert cfg.requests_per_minute == 30 and cfg.verify is True
    assert "pw-secret-1" not in repr(cfg)


def test_legacy_prefixed_extras_and_json_text_are_read():
    cfg = config(extra='{"extra__mdca__tenant_id": "tid2", "requests_per_minute": "12"}')
    assert cfg.tenant_id == "tid2" and cfg.requests_per_minute == 12


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"host": None}, "host"),
        ({"host": "http://plain.example"}, "host"),
        ({"login": ""}, "login"),
        ({"password": None}, "password"),
        ({"extra": {}}, "extra.tenant_id"),
        ({"extra": "{not json"}, "extra"),
        ({"extra": {"tenant_id": "t", "requests_per_minute": "fast"}}, "extra.requests_per_minute"),
        ({"extra": {"tenant_id": "t", "timeout": -1}}, "extra.timeout"),
        ({"extra": {"tenant_id": "t", "verify": False}}, "extra.verify"),
        ({"extra": {"tenant_id": "t", "verify": "/no/such/ca.pem"}}, "extra.verify"),
        ({"extra": {"tenant_id": "t", "scan_page_size": 100}}, "extra.scan_page_size"),
        ({"extra": {"tenant_id": "t", "token_url": "ftp://x"}}, "extra.token_url"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_bad_fields_are_init_variables_error_1_naming_the_field(changes, field):
    with pytest.raises(InitVariablesError) as info:
        config(**changes)
    assert info.value.code == 1
    assert f"field {field!r}:" in str(info.value)
    assert "mdca_default" in str(info.value)
    assert "pw-secret-1" not in str(info.value)


def test_verify_accepts_a_ca_bundle_path(tmp_path):
    bundle = tmp_path / "ca.pem"
    bundle.write_text("pem")
    assert config(extra={"tenant_id": "t", "verify": str(bundle)}).verify == str(bundle)


def test_errors_carry_code_context_and_pickle():
    err = PullError(
        305,
        "boom",
        service="alerts",
        window=("2026-01-01T00:00:00+00:00", "2026-01-01T00:05:00+00:00"),
        url="https://u:p@h/api/v1/alerts/?token=abcdefgh",
        status=502,
        body="x" * 2_000,
        remedy="wait",
    )
    clone = pickle.loads(pickle.dumps(err))
    assert type(clone) is PullError and str(clone) == str(err)
    assert (clone.code, clone.service, clone.status) == (305, "alerts", 502)
    assert clone.url == "https://h/api/v1/alerts/?token=%2A%2A%2A"
    assert "1500 more characters" in str(err)
    assert "window=[2026-01-01T00:00:00+00:00, 2026-01-01T00:05:00+00:00)" in str(err)


def test_each_kind_accepts_only_its_codes():
    with pytest.raises(ValueError, match="no code 300"):
        SetupError(300)
    assert InitVariablesError(2, "Expected <dict> but received <list>").code == 2
    assert str(SetupError(102)).startswith("SetupError 102: The provided credentials are valid")


def test_registered_secret_values_are_masked_everywhere():
    register_secret("a-very-private-value")
    assert redact_text("x a-very-private-value y") == "x *** y"
    assert "a-very-private-value" not in str(PullError(300, "saw a-very-private-value", body="a-very-private-value"))


@pytest.mark.parametrize(
    "text",
    [
        "Authorization: Bearer abc.def.ghijkl",
        "{'Authorization': 'Token abcdefghijkl'}",
        '{"access_token": "abcdefghijkl"}',
        "client_secret=abcdefghijkl&scope=x",
        "https://http-us.devo.io/stream/d/token!abcdefghijkl/host/tag",
    ],
)
def test_secret_shapes_are_masked(text):
    assert "abcdefghijkl" not in redact_text(text)
    assert "abcdefghijkl" not in sanitize_url(text) if text.startswith("http") else True


def test_rate_limiter_spaces_requests_evenly():
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    limiter = RateLimiter(60, clock=lambda: now[0], sleep=sleep)
    for _ in range(4):
        limiter.acquire()
    assert slept == pytest.approx([1.01, 1.01, 1.01])
    assert RateLimiter(None).acquire() == 0.0
