"""`deltastream feed`: run a market-data provider into Kafka until stopped."""
from __future__ import annotations

import datetime as dt
import logging
import signal
import threading
import time
from dataclasses import dataclass

from deltastream.runtime.bootstrap import wait_for_stack
from deltastream.settings import Settings
from producers.feed.products import product_spec
from producers.feed.provider import MarketDataProvider
from producers.feed.publisher import FeedPublisher, PublishStats
from producers.feed.synthetic import SyntheticMarket, SyntheticProvider

log = logging.getLogger("deltastream.feed")
SNAPSHOT_FLUSH_WAIT = 0.05  # seconds a real-time snapshot waits for its acknowledgements at most


@dataclass(frozen=True)
class FeedOptions:
    snapshots: int | None = None  # stop after this many (None: run until signalled)
    realtime: bool = True  # False: simulated clock, as fast as the broker takes it
    start: dt.datetime | None = None  # simulated clock start
    progress_every: float = 10.0  # seconds between progress lines


def synthetic_provider(settings: Settings, options: FeedOptions) -> SyntheticProvider:
    """The default provider, from settings; bad settings raise ValueError with the reason."""
    specs = [product_spec(p) for p in settings.products]
    market = SyntheticMarket(specs, strikes_per_side=settings.feed_strikes_per_side,
                             expiries=settings.feed_expiries, seed=settings.feed_seed,
                             time_scale=settings.feed_time_scale)
    return SyntheticProvider(market, settings.feed_interval, start=options.start, realtime=options.realtime)


def run_feed(settings: Settings, options: FeedOptions = FeedOptions(),
             provider: MarketDataProvider | None = None,
             stop: threading.Event | None = None, publisher: FeedPublisher | None = None) -> PublishStats:
    provider = provider or synthetic_provider(settings, options)
    wait_for_stack(settings, ("kafka",))
    publisher = publisher or FeedPublisher(settings, publish_quotes=settings.feed_publish_quotes)
    stop = stop or _stop_on_signals()
    stats, count, last_report = publisher.stats, 0, time.monotonic()
    log.info("feed publishing %s every %.3fs to %s", ", ".join(settings.products),
             settings.feed_interval, settings.kafka_servers)
    try:
        for snapshot in provider.snapshots():
            if stop.is_set():
                break
            publisher.publish(snapshot)
            if options.realtime:
                # On the wall clock the snapshot is complete and the next one an interval
                # away: nothing more to batch it with, so it goes now, not after the linger
                # (librdkafka ignores linger.ms while flushing; feed -> WebSocket p50 at 10k
                # quotes/s: -3.5 ms). What is not acknowledged in time stays queued.
                publisher.flush(min(SNAPSHOT_FLUSH_WAIT, settings.feed_interval / 2))
            count += 1
            if options.snapshots is not None and count >= options.snapshots:
                break
            if time.monotonic() - last_report >= options.progress_every:
                _report(stats)
                last_report = time.monotonic()
    finally:
        # Flush what was accepted before exiting: a SIGTERM loses nothing already produced.
        pending = publisher.flush(60)
        if pending:
            log.error("%d records still undelivered at exit", pending)
        _report(stats)
    return stats


def _report(stats: PublishStats) -> None:
    elapsed = max(time.monotonic() - stats.started, 1e-9)
    log.info("produced %d records (%d quotes), delivered %d, failed %d; %.0f records/s, %.0f quotes/s",
             stats.produced, stats.quotes, stats.delivered, stats.failed,
             stats.produced / elapsed, stats.quotes / elapsed)


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    return stop
