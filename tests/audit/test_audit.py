"""`deltastream audit` on a pipeline that really ran: feed → processors → both sinks. A clean
run audits clean; then each kind of damage done to the stores is found and named."""
from __future__ import annotations

import datetime as dt
import subprocess
import sys

import orjson

from deltastream.audit import audit, recompute_analytics
from deltastream.clients import mongo_client, redis_client
from schemas.records import ohlc_event_id
from sinks.run import run_mongo_sink, run_redis_sink
from tests.processors.harness import Worker, processor_settings, worker_env
from tests.sinks.conftest import SinkThread, T0, _redis_dbs, feed

SNAPSHOTS = 70  # 2 s apart: 140 s of event time, two closed 1m bars per product


def test_a_clean_run_audits_clean_and_every_kind_of_damage_is_found(stack, unique, tmp_path):
    settings = processor_settings(
        stack, unique, tmp_path, mongo_db=f"audit_{unique}",
        redis_url=f"{stack.settings.redis_uri.rsplit('/', 1)[0]}/{next(_redis_dbs)}")
    redis = redis_client(settings)
    redis.flushdb()
    worker = Worker(stack, settings, tmp_path / "worker.log")
    sinks = [SinkThread(run_mongo_sink, settings, f"audit-mongo-{unique}"),
             SinkThread(run_redis_sink, settings, f"audit-redis-{unique}")]
    try:
        worker.wait_for("partitions assigned")
        stats = feed(settings, SNAPSHOTS)
        start, end = T0, T0 + dt.timedelta(seconds=2 * (SNAPSHOTS - 1))
        clean = audit(settings, start, end, wait=90)
    finally:
        codes = [s.stop() for s in sinks]
        worker.stop()
    assert codes == [0, 0]
    checks = {c.name: c for c in clean.checks}
    assert clean.ok, [c.as_dict() for c in clean.checks if not c.ok]
    assert sum(checks[f"mongo {c}"].expected for c in ("underlying_ticks", "option_quotes", "option_chains")) \
        == stats.produced - clean.kafka_duplicates
    assert checks["mongo underlying_ticks"].expected == 2 * SNAPSHOTS
    assert checks["kafka analytics.chain"].found == checks["mongo option_chains"].expected == 4 * SNAPSHOTS
    assert checks["mongo ohlc_bars 1m (recomputed)"].found == 4  # 2 products x 2 closed minutes
    assert checks["redis history seq"].found >= 5  # general, product:{P}, chain:{P}

    # Damage each store in one way, then audit again.
    db = mongo_client(settings)[settings.mongo_db]
    lost_quote = db.option_quotes.find_one({}, sort=[("_id", 1)])["_id"]
    db.option_quotes.delete_one({"_id": lost_quote})
    tick = db.underlying_ticks.find_one({}, sort=[("_id", 1)])
    db.underlying_ticks.insert_one({**tick, "_id": tick["_id"] + "-copy"})  # the same tick twice
    analytics = db.chain_analytics.find_one({}, sort=[("_id", 1)])
    assert recompute_analytics(db.option_chains.find_one({"_id": analytics["_id"]}))["max_pain_strike"] \
        == analytics["max_pain_strike"]
    db.chain_analytics.update_one({"_id": analytics["_id"]}, {"$set": {"pcr_oi": analytics["pcr_oi"] + 0.5}})
    bar = db.ohlc_bars.find_one({"_id": ohlc_event_id("NIFTY", "1m", T0)})
    db.ohlc_bars.update_one({"_id": bar["_id"]}, {"$inc": {"num_ticks": 1}})  # a tick counted twice
    last = redis.xrevrange("history:general", count=1)[0][1][b"env"]
    seq = orjson.loads(last)["seq"]
    redis.xadd("history:general", {"env": last.replace(f'"seq":{seq},'.encode(), f'"seq":{seq + 3},'.encode())},
               id=f"{seq + 3}-0")

    damaged = {c.name: c for c in audit(settings, start, end, wait=0).checks}
    assert damaged["mongo option_quotes"].missing == [lost_quote]
    assert damaged["mongo underlying_ticks"].duplicated == [f"{tick['product']}:{tick['tick_id']}"]
    assert damaged["mongo chain_analytics (recomputed)"].mismatched == [analytics["_id"]]
    assert damaged["mongo ohlc_bars 1m (recomputed)"].duplicated == [bar["_id"]]
    assert damaged["redis history seq"].missing == [f"general: seq {seq + 1}..{seq + 2}"]
    assert damaged["mongo option_chains"].ok and damaged["kafka analytics.chain"].ok

    # The command: JSON report, exit status 1.
    done = subprocess.run(
        [sys.executable, "-m", "deltastream", "audit", "--start", start.isoformat(), "--end", end.isoformat(),
         "--wait", "0", "--json"],
        env=worker_env(stack, settings) | {"DELTASTREAM_MONGO_DB": settings.mongo_db,
                                           "DELTASTREAM_REDIS_URL": settings.redis_url},
        capture_output=True, timeout=120)
    assert done.returncode == 1, done.stderr.decode()[-2000:]
    report = orjson.loads(done.stdout)
    assert report["ok"] is False
    assert {c["name"] for c in report["checks"] if not c["ok"]} == {
        "mongo option_quotes", "mongo underlying_ticks", "mongo chain_analytics (recomputed)",
        "mongo ohlc_bars 1m (recomputed)", "redis history seq"}
