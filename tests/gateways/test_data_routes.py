"""The /data and /analytics routes through the gateway, on what the pipeline stored;
expected values come from the feed's own records and the quant core (test harness)."""
from __future__ import annotations

import datetime as dt

import pytest

from gateways.common.market import READ_THROUGH_TTL
from deltastream.clients import mongo_client, redis_client
from schemas.records import OptionChain, iso_z
from schemas.topics import MARKET_OPTION_QUOTES
from tests.gateways.dataset import INTERVAL, SNAPSHOTS, T0
from tests.processors.harness import close, expected_analytics, expected_bars, expected_surface

pytestmark = pytest.mark.integration


def at(n: int) -> str:
    return iso_z(T0 + dt.timedelta(seconds=INTERVAL * n))


def test_products_and_expiries(client, auth, dataset):
    assert client.get("/api/data/products", headers=auth).json()["products"] == ["AAPL", "NIFTY"]
    for product in ("NIFTY", "AAPL"):
        body = client.get(f"/api/data/expiries/{product}", headers=auth).json()
        assert body == {"product": product, "expiries": dataset.expiries(product)}


def test_underlying_history_newest_first_window_oldest_first(client, auth, dataset):
    ticks = [t for t in dataset.ticks if t.product == "NIFTY"]
    body = client.get("/api/data/underlying/NIFTY", params={"limit": 5}, headers=auth).json()
    assert body["count"] == 5
    assert [t["price"] for t in body["ticks"]] == [t.price for t in ticks[-5:]]
    assert [t["timestamp"] for t in body["ticks"]] == [iso_z(t.timestamp) for t in ticks[-5:]]

    body = client.get("/api/data/underlying/NIFTY", params={"start": at(10), "end": at(19)}, headers=auth).json()
    assert [t["tick_id"] for t in body["ticks"]] == [t.tick_id for t in ticks[10:20]]
    full = client.get("/api/data/underlying/NIFTY", params={"limit": 10_000}, headers=auth).json()
    assert full["count"] == SNAPSHOTS


def test_option_quote_history(client, auth, dataset):
    quotes = [q for q in dataset.records[MARKET_OPTION_QUOTES] if q.product == "AAPL"]
    symbol = quotes[0].symbol
    mine = [q for q in quotes if q.symbol == symbol]
    body = client.get(f"/api/data/options/{symbol}", params={"limit": 1000}, headers=auth).json()
    assert body["symbol"] == symbol and body["count"] == len(mine) == SNAPSHOTS
    assert [(q["bid"], q["ask"], q["open_interest"]) for q in body["quotes"]] == \
        [(q.bid, q.ask, q.open_interest) for q in mine]


def test_latest_chain_and_chain_at_a_past_time(client, auth, dataset):
    expiry = dataset.expiries("NIFTY")[0]
    chains = dataset.chains_of("NIFTY", expiry)
    latest = client.get(f"/api/data/chain/NIFTY/{expiry}", headers=auth)
    assert latest.status_code == 200
    assert OptionChain.model_validate_json(latest.content) == chains[-1]

    past = client.get(f"/api/data/chain/NIFTY/{expiry}", params={"at": at(20)}, headers=auth)
    assert OptionChain.model_validate_json(past.content) == chains[20]
    between = client.get(f"/api/data/chain/NIFTY/{expiry}",
                         params={"at": iso_z(T0 + dt.timedelta(seconds=INTERVAL * 20 + 3))}, headers=auth)
    assert OptionChain.model_validate_json(between.content) == chains[20]
    before = client.get(f"/api/data/chain/NIFTY/{expiry}", params={"at": "2026-01-01T00:00:00Z"}, headers=auth)
    assert before.status_code == 404 and "at or before 2026-01-01" in before.json()["detail"]


def test_latest_chain_reads_through_to_mongodb(client, auth, dataset):
    expiry = dataset.expiries("AAPL")[-1]
    key = f"latest:chain:AAPL:{expiry}"
    redis = redis_client(dataset.settings)
    try:
        kept = redis.get(key)
        redis.delete(key)
        response = client.get(f"/api/data/chain/AAPL/{expiry}", headers=auth)
        assert OptionChain.model_validate_json(response.content) == dataset.chains_of("AAPL", expiry)[-1]
        assert 0 < redis.ttl(key) <= READ_THROUGH_TTL  # put back, briefly, for the next reader
        redis.set(key, kept)
    finally:
        redis.close()


def test_pcr_trends_per_expiry_and_combined(client, auth, dataset):
    expiry = dataset.expiries("NIFTY")[1]
    chains = dataset.chains_of("NIFTY", expiry)
    body = client.get("/api/analytics/pcr_trends/NIFTY", params={"expiry": expiry, "limit": 1000},
                      headers=auth).json()
    assert body["count"] == len(chains) == SNAPSHOTS
    for point, chain in zip(body["points"], chains):
        want = expected_analytics(chain)
        assert point["timestamp"] == iso_z(chain.timestamp)
        assert close(point["pcr_oi"], want["pcr_oi"]) and close(point["pcr_volume"], want["pcr_volume"])

    window = client.get("/api/analytics/pcr_trends/NIFTY", params={"start": at(5), "end": at(5)},
                        headers=auth).json()
    assert {p["expiry"] for p in window["points"]} == set(dataset.expiries("NIFTY"))
    snapshot = [expected_analytics(c) for c in dataset.chains_of("NIFTY") if iso_z(c.timestamp) == at(5)]
    [combined] = window["combined"]
    assert combined["total_put_oi"] == sum(a["total_put_oi"] for a in snapshot)
    assert close(combined["pcr_oi"], sum(a["total_put_oi"] for a in snapshot) / sum(a["total_call_oi"] for a in snapshot))


def test_volatility_surface_latest_and_at(client, auth, dataset):
    for product in ("NIFTY", "AAPL"):
        body = client.get(f"/api/analytics/volatility_surface/{product}", headers=auth).json()
        want = expected_surface(dataset.chains_of(product))
        assert [e["expiry"] for e in body["expiries"]] == sorted(want)
        for e in body["expiries"]:
            assert e["strikes"] == want[e["expiry"]]["strikes"]
            assert close(e["atm_iv"], want[e["expiry"]]["atm_iv"])
    # The processors emit a surface per batch (how many depends on batching, down to one when
    # the worker meets the whole history in one batch): ask between two stored ones, or just
    # after the only one; the answer is the newest stored at or before `at`.
    client_db = mongo_client(dataset.settings)
    try:
        every = sorted(d["timestamp"] for d in client_db[dataset.settings.mongo_db].vol_surfaces.find(
            {"product": "NIFTY"}, {"timestamp": 1}))
    finally:
        client_db.close()
    assert every
    moment = every[(len(every) - 1) // 2] + dt.timedelta(milliseconds=500)
    stored = [t for t in every if t <= moment]
    response = client.get("/api/analytics/volatility_surface/NIFTY", params={"at": iso_z(moment)}, headers=auth)
    assert response.status_code == 200, (response.status_code, response.text)
    early = response.json()
    assert early["timestamp"] == iso_z(max(stored))
    # each expiry's smile comes from one of its chains up to then (which one depends on batching)
    for e in early["expiries"]:
        candidates = [expected_surface([c])[e["expiry"]] for c in dataset.chains_of("NIFTY", e["expiry"])
                      if c.timestamp <= max(stored)]
        assert any(close(e["atm_iv"], w["atm_iv"]) and e["strikes"] == w["strikes"] for w in candidates)
    gone = client.get("/api/analytics/volatility_surface/NIFTY", params={"at": "2020-01-01T00:00:00"}, headers=auth)
    assert gone.status_code == 404 and "no volatility surface for NIFTY at or before 2020-01-01" in gone.json()["detail"]


def test_max_pain_across_expiries(client, auth, dataset):
    body = client.get("/api/analytics/max_pain/AAPL", headers=auth).json()
    assert [e["expiry"] for e in body["expiries"]] == dataset.expiries("AAPL")
    for row in body["expiries"]:
        last = dataset.chains_of("AAPL", row["expiry"])[-1]
        assert row["max_pain_strike"] == expected_analytics(last)["max_pain_strike"]
        assert close(row["distance"], row["max_pain_strike"] - last.spot_price)


def test_ohlc_bars_by_interval_and_range(client, auth, dataset):
    bars = expected_bars(dataset.records, grace=10.0)
    for interval in ("1m", "5m"):
        body = client.get("/api/analytics/ohlc/NIFTY", params={"interval": interval, "limit": 1000},
                          headers=auth).json()
        assert body["count"] == sum(1 for k in bars if k.startswith(f"NIFTY:{interval}:"))
        for bar in body["bars"]:
            want = bars[bar["event_id"]]
            assert all(close(bar[f], want[f]) for f in ("open", "high", "low", "close", "num_ticks"))
    ranged = client.get("/api/analytics/ohlc/NIFTY", params={"start": at(12), "end": at(24)}, headers=auth).json()
    assert [b["start_time"] for b in ranged["bars"]] == [at(12), at(18), at(24)]
    symbol = dataset.chains_of("NIFTY")[0].calls[0].symbol
    option = client.get("/api/analytics/ohlc/NIFTY", params={"symbol": symbol}, headers=auth).json()
    assert option["count"] > 0 and {b["symbol"] for b in option["bars"]} == {symbol}
    wrong = client.get("/api/analytics/ohlc/AAPL", params={"symbol": symbol}, headers=auth)
    assert wrong.status_code == 422 and "not an option on AAPL" in wrong.json()["detail"][0]["msg"]


def test_oi_buildup_against_the_first_snapshot(client, auth, dataset):
    expiry = dataset.expiries("NIFTY")[0]
    chains = dataset.chains_of("NIFTY", expiry)
    body = client.get("/api/analytics/oi_buildup/NIFTY", params={"expiry": expiry, "start": at(0)},
                      headers=auth).json()
    [row] = body["expiries"]
    first, last = expected_analytics(chains[0]), expected_analytics(chains[-1])
    assert row["since"] == at(0) and row["timestamp"] == iso_z(chains[-1].timestamp)
    assert row["call_oi_change"] == last["total_call_oi"] - first["total_call_oi"]
    assert row["put_oi_change"] == last["total_put_oi"] - first["total_put_oi"]
    up = chains[-1].spot_price > chains[0].spot_price
    more = row["call_oi_change"] + row["put_oi_change"] > 0
    assert row["signal"] == {(True, True): "long_buildup", (False, True): "short_buildup",
                             (True, False): "short_covering", (False, False): "long_unwinding"}[(up, more)]
    both = client.get("/api/analytics/oi_buildup/NIFTY", headers=auth).json()
    assert [r["expiry"] for r in both["expiries"]] == dataset.expiries("NIFTY")
