"""The documented example consumer works against our topics, as an outside team would run it."""
from __future__ import annotations

import datetime as dt
import subprocess
import sys
import threading
from pathlib import Path

from producers.feed.run import FeedOptions, run_feed

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "consume_analytics.py"


def test_example_consumer_validates_records_from_our_topics(stack, unique):
    settings = stack.with_settings(topic_prefix=f"ex{unique}.", products=["QQQ"], feed_strikes_per_side=2,
                                   feed_expiries=1, feed_publish_quotes=False)
    stats = run_feed(settings, FeedOptions(snapshots=3, realtime=False,
                                           start=dt.datetime(2026, 11, 23, 15, tzinfo=dt.timezone.utc)),
                     stop=threading.Event())
    topics = f"ex{unique}.market.underlying,ex{unique}.market.option_chains"
    result = subprocess.run([sys.executable, str(EXAMPLE), "--bootstrap", settings.kafka_servers, "--topics", topics,
                             "--group", f"ext-{unique}", "--max", str(stats.produced)],
                            capture_output=True, text=True, timeout=90)
    assert result.returncode == 0, result.stderr
    assert f"{stats.produced} records, 0 invalid" in result.stderr
    assert result.stdout.count("option_chain.v1") == 3
