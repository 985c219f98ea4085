"""Conventions every endpoint follows: auth, error envelope, request ids, health, OpenAPI."""

from __future__ import annotations


def test_health_needs_no_auth(server):
    import httpx

    r = httpx.get(server.url + "/health")
    assert r.status_code == 200
    assert r.json()["status"] == "ok"
    assert r.headers["x-request-id"]


def test_openapi_document(server):
    import httpx

    doc = httpx.get(server.url + "/openapi.json").json()
    assert "/v1/datasets" in doc["paths"]
    assert "/v1/api_keys" in doc["paths"]


def test_missing_and_bad_keys_get_401_in_seed_envelope(server):
    import httpx

    r = httpx.get(server.url + "/v1/datasets")
    assert r.status_code == 401
    err = r.json()["error"]
    assert set(err) == {"type", "code", "message", "param"}
    assert err["type"] == "authentication_error"
    r = httpx.get(server.url + "/v1/datasets", headers={"Authorization": "Bearer vk_nope_nope_nope_nope_nope"})
    assert r.status_code == 401
    assert r.json()["error"]["message"] == "Invalid API key"


def test_request_id_is_echoed(api):
    r = api.get("/v1/datasets", headers={"X-Request-Id": "my-trace-1"})
    assert r.headers["x-request-id"] == "my-trace-1"


def test_unknown_route_is_404_envelope(api):
    r = api.get("/v1/nothing_here")
    assert r.status_code == 404
    assert r.json()["error"]["type"] == "not_found_error"


def test_invalid_json_body_is_422_with_envelope(api):
    r = api.post("/v1/api_keys", content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 422
    assert r.json()["error"]["message"]


def test_schema_error_names_param(api):
    r = api.post("/v1/api_keys", json={"name": 123})
    assert r.status_code == 422
    assert r.json()["error"]["param"] == "name"


def test_bootstrap_key_works_and_whoami(server):
    with server.client() as c:
        bal = c.get("/v1/billing/balance").json()
        assert bal["org_id"].startswith("org_")
        assert bal["balance_usd"] == server.ctx.settings.initial_credit_usd
        me = c.get("/v1/me").json()
        assert me["org_id"] == bal["org_id"]
