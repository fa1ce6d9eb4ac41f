"""Feed throughput into the broker: quotes/s and records/s, embedded Tansu by default.

    python -m bench.bench_feed [--seconds 10]

Two figures, as the embedded broker caps single records near 8k/s (one record per batch):
chain snapshots carry ~40 quotes each, per-option records carry one.
"""
from __future__ import annotations

import argparse
import datetime as dt
import tempfile
import threading
import time
from pathlib import Path

from producers.feed.publisher import FeedPublisher
from producers.feed.run import FeedOptions, run_feed
from producers.feed.synthetic import SyntheticMarket
from producers.feed.products import PRODUCTS
from deltastream.runtime.stack import start_stack

T0 = dt.datetime(2026, 11, 23, 4, 0, tzinfo=dt.timezone.utc)


def generate_only(seconds: float) -> tuple[int, float]:
    """Market simulation + pricing alone (no Kafka): quotes/s the model computes."""
    market = SyntheticMarket(list(PRODUCTS.values()), seed=1, strikes_per_side=20)
    quotes, start, now = 0, time.perf_counter(), T0
    while time.perf_counter() - start < seconds:
        quotes += market.step(now).quote_count
        now += dt.timedelta(seconds=1)
    return quotes, time.perf_counter() - start


def publish(settings, seconds: float, publish_quotes: bool) -> tuple[int, int, float]:
    publisher = FeedPublisher(settings, publish_quotes=publish_quotes)
    stop = threading.Event()
    timer = threading.Timer(seconds, stop.set)
    start = time.perf_counter()
    timer.start()
    stats = run_feed(settings, FeedOptions(realtime=False, start=T0, progress_every=1e9),
                     stop=stop, publisher=publisher)
    elapsed = time.perf_counter() - start  # includes the final flush: delivered, not just queued
    return stats.delivered, stats.quotes // (2 if publish_quotes else 1), elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, start_stack(Path(tmp)) as stack:
        base = stack.with_settings(feed_strikes_per_side=20, feed_seed=1)
        rows = []
        q, s = generate_only(args.seconds)
        rows.append(("model only (GBM + BSM + Greeks, no Kafka)", "-", f"{q / s:,.0f}"))
        recs, quotes, s = publish(base.model_copy(update={"topic_prefix": "bench1.", "feed_publish_quotes": False}),
                                  args.seconds, False)
        rows.append(("chain snapshots + ticks into Kafka", f"{recs / s:,.0f}", f"{quotes / s:,.0f}"))
        recs, quotes, s = publish(base.model_copy(update={"topic_prefix": "bench2.", "feed_publish_quotes": True}),
                                  args.seconds, True)
        rows.append(("+ one record per option quote", f"{recs / s:,.0f}", f"{quotes / s:,.0f}"))
    print(f"\nfeed throughput, {len(PRODUCTS)} products x 3 expiries x 41 strikes, "
          f"broker profile {base.profile.value} ({base.kafka_servers})")
    print(f"{'mode':<45} {'records/s':>12} {'quotes/s':>12}")
    for mode, recs_s, quotes_s in rows:
        print(f"{mode:<45} {recs_s:>12} {quotes_s:>12}")
    print("target: >= 50,000 quotes/s published counting quotes inside chain snapshots")


if __name__ == "__main__":
    main()
