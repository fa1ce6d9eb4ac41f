"""A broker outage: the feed keeps what it accepted and delivers it once the broker is back."""
from __future__ import annotations

import subprocess
import threading
import time

from confluent_kafka import Consumer

from deltastream.clients import consumer_config
from deltastream.runtime.probes import wait_ready
from deltastream.runtime.servers import kafka_spec
from deltastream.settings import Settings
from producers.feed.publisher import FeedPublisher
from producers.feed.run import FeedOptions, run_feed
from schemas.codec import decode_dict
from schemas.topics import MARKET_UNDERLYING
from tests.stack import free_port


def start_broker(settings: Settings) -> subprocess.Popen:
    proc = subprocess.Popen(kafka_spec(settings).argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_ready(settings, ("kafka",), timeout=30)
    return proc


def test_feed_survives_a_broker_restart_without_losing_accepted_records(tmp_path):
    settings = Settings(_env_file=None, data_dir=tmp_path, kafka_port=free_port(), products=["NIFTY"],
                        feed_interval=0.05, feed_strikes_per_side=1, feed_expiries=1,
                        feed_publish_quotes=False)
    broker = start_broker(settings)
    publisher, stop = FeedPublisher(settings, publish_quotes=False), threading.Event()
    feeder = threading.Thread(target=run_feed, args=(settings, FeedOptions(snapshots=120, progress_every=1e9)),
                              kwargs=dict(stop=stop, publisher=publisher))
    feeder.start()
    try:
        time.sleep(1.5)
        broker.kill()  # the in-memory broker loses everything it had acknowledged
        broker.wait()
        time.sleep(1.5)  # the feed keeps producing into its queue meanwhile
        acknowledged_before_outage = publisher.stats.delivered
        produced_before_restart = publisher.stats.produced
        broker = start_broker(settings)
        feeder.join(120)
        assert not feeder.is_alive()
        stats = publisher.stats
        assert 0 < acknowledged_before_outage < produced_before_restart < stats.produced == 120 * 2
        assert stats.failed == 0 and stats.delivered == stats.produced

        # Everything not acknowledged by the old broker reached the new one, once.
        expected = stats.produced - acknowledged_before_outage  # ticks + chains on the new broker
        consumer = Consumer(consumer_config(settings, "outage-check"))
        consumer.subscribe([MARKET_UNDERLYING])
        ticks, idle, deadline = [], 0, time.monotonic() + 40
        while time.monotonic() < deadline and idle < 4:  # read until the topic goes quiet
            batch = [decode_dict(m.value())["event_id"] for m in consumer.consume(500, 0.5) if not m.error()]
            ticks += batch
            idle = idle + 1 if not batch and ticks else 0
        consumer.close()
        assert len(ticks) == len(set(ticks))
        assert abs(2 * len(ticks) - expected) <= 1  # ticks and chains alternate
    finally:
        stop.set()
        broker.kill()
        broker.wait()
