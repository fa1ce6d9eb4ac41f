"""End to end in headless Chromium: the pipeline from `deltastream up` (real-time feed,
processor, sinks, API and socket gateways) and the page a user opens at the API gateway."""
from __future__ import annotations

import re
import subprocess
import sys
import uuid

import pytest

from quant import max_pain
from tests.dashboard.conftest import ARTIFACTS, PRODUCTS, STRIKES_PER_SIDE, wait_healthy
from tests.stack import free_port

# The first run may apt-get install chromium (in the fixtures, counted in the test's time).
pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

# Bounds for a loaded 2-core machine; the test waits for events, these only stop a hang.
FIRST_CHAIN_MS = 120_000
LIVE_CHANGE_MS = 30_000
ANALYTICS_MS = 150_000
PASSWORD = "correct horse battery"
LOCAL = re.compile(r"^(https?|wss?)://127\.0\.0\.1:\d+/")

# Page-side helpers. Playwright's polling predicates must be functions: the page's CSP
# forbids evaluating strings.
CELLS = """() => Object.fromEntries([...document.querySelectorAll('#chain td[data-field]')]
    .map(td => [td.closest('tr').dataset.strike + ':' + td.dataset.field, td.textContent]))"""
TABLE_FULL = """rows => { const r = document.querySelectorAll('#chain tbody tr[data-strike]');
    return r.length === rows && !r[0].querySelector('td[data-field="C:last"]').textContent.includes('–'); }"""
CELL_CHANGED = """([before, seen]) => window.__dashboard.counts.chain_update > seen &&
    [...document.querySelectorAll('#chain td[data-field]')].some(td =>
        td.textContent !== before[td.closest('tr').dataset.strike + ':' + td.dataset.field])"""
# What the table shows and the chain it shows, read in one go (the table re-renders live).
SHOWN = """() => { const s = window.__dashboard, c = s.chains.get(s.expiry);
    const row = cls => document.querySelector('#chain tbody tr.' + cls);
    return { spot: c.spot_price, strikes: c.strikes, call_oi: c.calls.map(q => q.open_interest),
             put_oi: c.puts.map(q => q.open_interest), fresh: !!(s.summaries.get(s.expiry) &&
             s.summaries.get(s.expiry).timestamp === c.timestamp),
             atm: row('atm') && +row('atm').dataset.strike,
             maxpain: row('maxpain') && +row('maxpain').dataset.strike,
             atms: document.querySelectorAll('#chain tbody tr.atm').length,
             maxpains: document.querySelectorAll('#chain tbody tr.maxpain').length }; }"""


@pytest.fixture
def page(browser, live_stack, tmp_path):
    context = browser.new_context(viewport={"width": 1600, "height": 1100})
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    # A data route answers 404 until its first value is stored (the page then waits for it).
    page.on("response", lambda r: problems.append(f"HTTP {r.status} {r.url}") if r.status >= 400
            and not (r.status == 404 and re.search(r"/api/(data|analytics)/", r.url)) else None)
    page.on("console", lambda msg: problems.append(f"console {msg.type}: {msg.text}")
            if msg.type == "error" and "Failed to load resource" not in msg.text else None)
    # Everything the page loads comes from our two servers (no CDN).
    outside: list[str] = []
    sockets: list[str] = []
    page.on("request", lambda req: None if LOCAL.match(req.url) or req.url.startswith("data:")
            else outside.append(req.url))
    page.on("websocket", lambda ws: sockets.append(ws.url))
    page.problems, page.outside, page.sockets = problems, outside, sockets
    yield page
    page.screenshot(path=str(tmp_path / "dashboard-teardown.png"), full_page=True)
    context.close()


def log_in(page, who: str) -> None:
    """A new user: the page registers, then logs in with the same credentials."""
    page.fill("#email", f"{who}-{uuid.uuid4().hex[:8]}@example.com")
    page.fill("#password", PASSWORD)
    page.click("#register-btn")
    page.wait_for_selector("#dash-view", state="visible")


def test_login_pick_product_chain_fills_and_updates_live(page, live_stack):
    product = PRODUCTS[1]  # not the default first choice: the picker must work
    page.goto(live_stack.api_url + "/")
    assert page.url.endswith("/dashboard/")
    log_in(page, "trader")
    page.wait_for_function("() => document.querySelector('#conn').dataset.state === 'live'",
                           timeout=30_000)
    assert any(url.startswith(f"ws://127.0.0.1:{live_stack.socket_port}/ws?token=") for url in page.sockets)

    # pick a product; its chain table fills (REST first paint or the socket's snapshot)
    page.wait_for_function("p => [...document.querySelectorAll('#product option')].some(o => o.value === p)",
                           arg=product, timeout=FIRST_CHAIN_MS)
    page.select_option("#product", product)
    page.wait_for_function(TABLE_FULL, arg=2 * STRIKES_PER_SIDE + 1, timeout=FIRST_CHAIN_MS)
    assert page.eval_on_selector("#product", "el => el.value") == product
    expiry = page.eval_on_selector("#expiry", "el => el.value")
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", expiry)

    # ATM and max pain highlighted where the quant core puts them for the chain shown
    shown = page.evaluate(SHOWN)
    assert shown["atms"] == 1 and shown["maxpains"] == 1
    strikes = sorted(shown["strikes"])
    assert shown["atm"] == min(strikes, key=lambda k: (abs(k - shown["spot"]), k))
    assert shown["maxpain"] == max_pain(shown["strikes"], shown["call_oi"], shown["put_oi"])

    # a value changes live, carried by a chain_update from the WebSocket
    before = page.evaluate(CELLS)
    seen = page.evaluate("window.__dashboard.counts.chain_update")
    page.wait_for_function(CELL_CHANGED, arg=[before, seen], timeout=LIVE_CHANGE_MS)
    after = page.evaluate(CELLS)
    assert after.keys() == before.keys(), "the rows were rebuilt instead of updated"
    assert [k for k in after if after[k] != before[k]], "no chain cell changed"

    # analytics from the processors: PCR and max pain (chain_summary), candles, vol surface
    page.wait_for_function("() => window.__dashboard.counts.chain_summary > 0 && "
                           "document.querySelector('#pcr-oi').textContent !== '–'", timeout=ANALYTICS_MS)
    page.wait_for_function("() => document.querySelector('#surface-time').textContent.includes('as of')",
                           timeout=ANALYTICS_MS)
    assert page.evaluate("window.__dashboard.counts.underlying_update") > 0
    assert float(page.inner_text("#pcr-oi")) > 0
    assert page.locator("#candles canvas").count() > 0 and page.locator("#pcr-chart canvas").count() > 0

    # the expiry picker: the other expiry's chain replaces the table
    expiries = page.eval_on_selector_all("#expiry option", "os => os.map(o => o.value)")
    other = next(e for e in expiries if e != expiry)
    page.select_option("#expiry", other)
    page.wait_for_function("e => window.__dashboard.expiry === e && window.__dashboard.chains.has(e) && "
                           "document.querySelectorAll('#chain tbody tr.atm').length === 1",
                           arg=other, timeout=LIVE_CHANGE_MS)
    assert page.evaluate("e => window.__dashboard.chains.get(e).expiry", other) == other

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "dashboard.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    assert page.outside == [], f"requests to other hosts: {page.outside}"
    assert page.problems == [], page.problems


def test_socket_gateway_down_shows_reconnecting_and_rest_still_paints(browser, live_stack, tmp_path):
    """A second API gateway whose dashboard points at a port nobody listens on."""
    env = live_stack.env | {"DELTASTREAM_API_PORT": str(free_port()),
                            "DELTASTREAM_SOCKET_PORT": str(free_port())}
    log = tmp_path / "api.log"
    with log.open("wb") as out:
        api = subprocess.Popen([sys.executable, "-m", "deltastream", "serve", "api"], cwd=tmp_path,
                               env=env, stdout=out, stderr=subprocess.STDOUT)
    context = browser.new_context()
    try:
        url = f"http://127.0.0.1:{env['DELTASTREAM_API_PORT']}"
        wait_healthy(f"{url}/health", api, log, 60)
        page = context.new_page()
        page.goto(url + "/dashboard")
        log_in(page, "offline")
        page.wait_for_function("() => document.querySelector('#conn').dataset.state === 'reconnecting'",
                               timeout=LIVE_CHANGE_MS)
        # the stored chain still paints from REST
        page.wait_for_function("() => document.querySelectorAll('#chain tbody tr[data-strike]').length > 0",
                               timeout=FIRST_CHAIN_MS)
        assert page.evaluate("window.__dashboard.counts.chain_update") == 0
        assert page.text_content("#conn") == "reconnecting"
    finally:
        context.close()
        api.terminate()
        api.wait(30)
