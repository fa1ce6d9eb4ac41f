"""A window replayed into a prefix gives the unchanged processors the same analytics as live."""
from __future__ import annotations

import datetime as dt
import threading

from producers.feed.run import FeedOptions, run_feed
from producers.replay.api import TopicRepublisher, replay_to_callback
from schemas.topics import ANALYTICS_CHAIN, MARKET_OPTION_CHAINS, MARKET_UNDERLYING
from tests.processors.harness import T0, Outputs, Worker, processor_settings

SNAPSHOTS = 6
CHAINS = SNAPSHOTS * 2 * 2  # snapshots x products x expiries


def analytics_of(stack, settings, log, group) -> dict[str, dict]:
    """Run a worker over the settings' topics; its chain analytics by event_id."""
    worker = Worker(stack, settings, log)
    outputs = Outputs(settings, group)
    try:
        outputs.until(lambda o: len(o.latest(ANALYTICS_CHAIN)) >= CHAINS, timeout=120)
    finally:
        worker.stop()
        outputs.close()
    # Chain analytics are one record per input snapshot; vol surfaces are emitted per
    # processing batch, so their count depends on timing and they are not compared here.
    return outputs.latest(ANALYTICS_CHAIN)


def test_replayed_window_gives_the_same_analytics_as_live(stack, unique, tmp_path):
    live = processor_settings(stack, unique, tmp_path / "live", feed_publish_quotes=False)
    stats = run_feed(live, FeedOptions(snapshots=SNAPSHOTS, realtime=False, start=T0), stop=threading.Event())
    assert stats.failed == 0
    live_analytics = analytics_of(stack, live, tmp_path / "live.log", f"out-{unique}")

    prefix = f"r{unique}."
    republish = TopicRepublisher(live, prefix)
    end = T0 + dt.timedelta(seconds=SNAPSHOTS * live.feed_interval)
    count = replay_to_callback(live, republish, [live.topic(MARKET_UNDERLYING), live.topic(MARKET_OPTION_CHAINS)],
                               T0, end)
    assert count == stats.produced and republish.flush(30) == 0

    replayed = live.model_copy(update={"topic_prefix": prefix + live.topic_prefix,
                                       "processor_app_id": f"replay-{unique}", "data_dir": tmp_path / "replay"})
    replay_analytics = analytics_of(stack, replayed, tmp_path / "replay.log", f"rout-{unique}")
    assert len(replay_analytics) == CHAINS
    assert replay_analytics == live_analytics  # record for record, by event_id
