"""The dashboard as the API gateway serves it: redirects, page, config, assets (all local)."""
from __future__ import annotations

import re
from typing import Iterator

import pytest
from fastapi.testclient import TestClient

from deltastream.settings import Settings
from gateways.api.app import create_app
from gateways.dashboard.router import STATIC

VENDOR = STATIC / "vendor"


@pytest.fixture(scope="module")
def client(tmp_path_factory) -> Iterator[TestClient]:
    settings = Settings(_env_file=None, data_dir=tmp_path_factory.mktemp("dash"), socket_port=18_802,
                        products=["NIFTY", "SPY"], jwt_secret="dashboard-router-tests-0123456789")
    with TestClient(create_app(settings)) as c:  # store clients are created, never used here
        yield c


@pytest.mark.parametrize("path", ["/", "/dashboard"])
def test_root_and_dashboard_redirect_to_the_page(client, path):
    r = client.get(path, follow_redirects=False)
    assert r.status_code == 307 and r.headers["location"] == "/dashboard/"


def test_page_is_html_with_a_strict_csp_and_only_local_resources(client):
    r = client.get("/dashboard/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in r.headers["content-security-policy"]
    assert 'id="chain"' in r.text and 'id="login-form"' in r.text
    # every script/stylesheet the page loads comes from this server
    refs = [ref for ref in re.findall(r'(?:src|href)="([^"]+)"', r.text) if not ref.startswith("data:")]
    assert refs and all(not re.match(r"^(https?:)?//", ref) for ref in refs), refs
    for ref in refs:
        assert client.get("/dashboard/" + ref).status_code == 200, ref


def test_config_tells_the_page_where_the_socket_gateway_is(client):
    r = client.get("/dashboard/config.json")
    assert r.status_code == 200
    assert r.json() == {"api_prefix": "/api", "socket_url": None, "socket_port": 18_802,
                        "socket_path": "/ws", "products": ["NIFTY", "SPY"]}


def test_config_socket_url_override(tmp_path):
    settings = Settings(_env_file=None, data_dir=tmp_path, jwt_secret="dashboard-router-tests-0123456789",
                        dashboard_socket_url="wss://markets.example/ws")
    assert TestClient(create_app(settings)).get("/dashboard/config.json").json()["socket_url"] \
        == "wss://markets.example/ws"


def test_modules_are_served_as_javascript_and_import_only_local_files(client):
    for path in sorted((STATIC / "js").glob("*.js")):
        r = client.get(f"/dashboard/static/js/{path.name}")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/javascript")
        for target in re.findall(r'^import .* from "([^"]+)";', r.text, re.M):
            assert target.startswith("./") or target.startswith("../vendor/"), (path.name, target)
            resolved = (path.parent / target).resolve()
            assert resolved.is_file(), (path.name, target)


def test_vendored_library_is_small_licensed_and_recorded():
    libs = list(VENDOR.glob("*.mjs"))
    assert [p.name for p in libs] == ["lightweight-charts.standalone.production.mjs"]
    assert sum(p.stat().st_size for p in VENDOR.iterdir()) < 1_500_000
    assert "Apache License" in (VENDOR / "lightweight-charts.LICENSE").read_text()
    note = (VENDOR / "README.md").read_text()
    version = re.search(r"Lightweight Charts™ v([\d.]+)", libs[0].read_text()[:400]).group(1)
    assert f"lightweight-charts@{version}" in note


@pytest.mark.parametrize("path", ["/dashboard/static/../router.py", "/dashboard/static/%2e%2e/router.py",
                                  "/dashboard/static/nope.js", "/dashboard/static/vendor"])
def test_assets_outside_the_static_dir_or_missing_are_404(client, path):
    assert client.get(path).status_code == 404


def test_dashboard_routes_need_no_token_but_the_data_does(client):
    assert client.get("/dashboard/config.json").status_code == 200
    assert client.get("/api/data/products").status_code == 401
