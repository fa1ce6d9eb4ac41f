"""The Faust app: four batched agents, their changelog-backed state, the DLQ.

One app (id and consumer group `settings.processor_app_id`) reads the market topics (named
with `settings.topic_prefix`) and an internal slices topic, and writes analytics.* and
deltastream.dlq. Each agent takes up to `processor_batch_size` messages at a time
(`stream.take_events`, waiting at most `processor_batch_wait` for a batch to fill), decodes
them with the fast path of `stream_processors.decode`, groups them by key and runs its
processor once per key and batch (or, for a processor with `apply_many`, once per batch for
all its keys: the chain analytics are vectorised across the whole batch). Per batch:

1. poison messages (bad JSON, schema violation, a record the processor fails on) become
   DLQ records; the rest of the batch goes on;
2. the outputs and DLQ records are sent and acknowledged (transient failures retried with
   backoff, `stream_processors.outbox`);
3. only then the new states enter the store, which writes them to the changelog before the
   next offset commit (`stream_processors.state`);
4. Faust acks the batch's messages.
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import faust
import orjson

from deltastream.clients import faust_broker_settings, faust_fetch_max_wait_ms
from deltastream.settings import Settings
from schemas.topics import (DELTASTREAM_DLQ, MARKET_OPTION_CHAINS, MARKET_OPTION_QUOTES,
                            MARKET_UNDERLYING, TOPICS)
from stream_processors.bars import US, WindowSpec
from stream_processors import faust_fixes
from stream_processors.decode import CHAIN, QUOTE, TICK, Kind, Poison, Source, decode_many
from stream_processors.dedupe import DEFAULT_LIMIT
from stream_processors.outbox import Message, Outbox, Retry, add_dlq
from stream_processors.producer import OutputProducer
from stream_processors.processors import (QUOTE_INTERVALS, SLICES, UNDERLYING_INTERVALS,
                                          ChainProcessor, Counts, QuoteProcessor,
                                          SurfaceProcessor, UnderlyingProcessor)
from stream_processors.state import (ChangelogWriter, CheckpointSensor, LeanMonitor, StateStore,
                                    routed_table)

log = logging.getLogger("deltastream.processors")

SLICE_PARTITIONS = TOPICS[MARKET_UNDERLYING].partitions  # one copartitioned group with it
SLICE_HEADERS = [("ds-schema", b"vol_slice.internal"), ("content-type", b"application/json")]


@dataclass(slots=True)
class Slice:
    """A volatility-surface slice on the internal topic (written by us, so trusted)."""

    record: dict[str, Any]
    ts: int
    event_id: str
    src: Source


def decode_slices(sources: Sequence[Source]) -> tuple[list[Slice], list[Poison]]:
    good, bad = [], []
    for src in sources:
        try:
            d = orjson.loads(src.value)
            good.append(Slice(d, d["ts"], f"{d['product']}|{d['expiry']}:{d['ts']}", src))
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            bad.append(Poison(src, f"unreadable slice: {exc!r}", type(exc).__name__))
    return good, bad


@dataclass
class Batch:
    seq: int
    events: Sequence[faust.EventT]
    messages: list[Message]
    keys: list[bytes]  # staged state
    sent: asyncio.Future  # → the messages that failed
    started: float


@dataclass
class Unit:
    """One agent: its input topic, decoder, grouping key, processor and state."""

    name: str
    topic: str
    decode: Callable[[Sequence[Source]], tuple[list[Any], list[Poison]]]
    key: Callable[[Any], str]
    processor: Any
    store: StateStore
    counts: Counts
    seq: int = 0
    stream: Any = None

    def __post_init__(self) -> None:
        self.counts.add("batches", 0)
        self.queue: asyncio.Queue[Batch] = asyncio.Queue()
        self.slots = asyncio.Semaphore(1)  # replaced by Pipeline: settings.processor_in_flight


class Pipeline:
    """The processors' Faust app for one set of settings."""

    def __init__(self, settings: Settings, *, retry: Retry = Retry()) -> None:
        self.settings = settings
        self.retry = retry
        self.service = settings.processor_app_id
        faust_fixes.apply()
        app_id = settings.processor_app_id
        datadir = settings.data_dir / "processors" / app_id
        datadir.mkdir(parents=True, exist_ok=True)
        self.app = faust.App(
            app_id,
            **faust_broker_settings(settings),
            datadir=str(datadir),
            autodiscover=False,
            web_enabled=False,
            store="memory://",
            table_standby_replicas=0,  # a memory store drops standby keys after recovery anyway
            topic_disable_leader=True,
            consumer_auto_offset_reset="earliest",
            consumer_max_fetch_size=settings.processor_fetch_max_bytes,
            stream_wait_empty=True,
            producer_acks=-1,
            Monitor=LeanMonitor,
        )
        faust_fixes.set_fetch_max_wait(self.app, faust_fetch_max_wait_ms(settings))
        self.topics = {name: settings.topic(name) for name in
                       (MARKET_UNDERLYING, MARKET_OPTION_QUOTES, MARKET_OPTION_CHAINS)}
        self.slices_topic = f"{app_id}-vol-slices"
        spec = WindowSpec(intervals=UNDERLYING_INTERVALS, grace_us=int(settings.processor_grace_seconds * US),
                          update_every_us=int(settings.processor_bar_update_seconds * US))
        quote_spec = WindowSpec(QUOTE_INTERVALS, spec.grace_us, spec.update_every_us)

        def store(name: str, partitions: int, help: str) -> StateStore:
            return StateStore(routed_table(self.app, name, partitions, help))

        underlying = UnderlyingProcessor(spec, DEFAULT_LIMIT)
        quotes = QuoteProcessor(quote_spec, DEFAULT_LIMIT)
        chains = ChainProcessor(DEFAULT_LIMIT)
        surfaces = SurfaceProcessor()
        self.units = [
            Unit("underlying", self.topics[MARKET_UNDERLYING], _decoder(TICK), lambda r: r.product,
                 underlying, store("underlying", TOPICS[MARKET_UNDERLYING].partitions,
                                   "per product: dedupe, session, open OHLC windows"),
                 underlying.counts),
            Unit("quotes", self.topics[MARKET_OPTION_QUOTES], _decoder(QUOTE), lambda r: r.symbol,
                 quotes, store("quotes", TOPICS[MARKET_OPTION_QUOTES].partitions,
                               "per option symbol: dedupe, open 1m windows"), quotes.counts),
            Unit("chains", self.topics[MARKET_OPTION_CHAINS], _decoder(CHAIN), lambda r: r.key,
                 chains, store("chains", TOPICS[MARKET_OPTION_CHAINS].partitions,
                               "per product|expiry: dedupe, latest analytics"), chains.counts),
            Unit("surfaces", self.slices_topic, decode_slices, lambda r: r.record["product"],
                 surfaces, store("surfaces", SLICE_PARTITIONS, "per product: latest slice per expiry"),
                 surfaces.counts),
        ]
        # outputs batched; changelogs one record per batch on the embedded broker, whose end
        # offset Faust's recovery reads up to (`deltastream.clients.producer_config`)
        self.output = OutputProducer(settings, client_id=f"{app_id}-outputs", batched=True)
        self.changelog_output = OutputProducer(settings, client_id=f"{app_id}-changelog")
        self.changelog = ChangelogWriter(self.changelog_output, retry)
        for unit in self.units:
            unit.slots = asyncio.Semaphore(settings.processor_in_flight)  # computed, sent, not acked
            unit.store.table.writer = self.changelog
        self.changelog.attach(self.app.producer)
        self.app.sensors.add(CheckpointSensor([u.store for u in self.units], self.changelog))
        self.app.on_partitions_revoked.connect(self._on_revoked)
        self.app.on_partitions_assigned.connect(self._on_assigned)
        for unit in self.units:
            internal = unit.topic == self.slices_topic
            topic = self.app.topic(unit.topic, key_serializer="raw", value_serializer="raw",
                                   partitions=SLICE_PARTITIONS if internal else None,
                                   internal=internal)
            self.app.agent(topic, name=f"{app_id}.{unit.name}")(self._agent(unit))
        self.app.timer(settings.processor_report_seconds, name=f"{app_id}.report")(self._report)
        self._last_report: dict[str, int] = {}
        self._next_offset: dict[tuple[str, int], int] = {}

    def close(self) -> None:
        left = self.output.close() + self.changelog_output.close()
        if left:
            log.error("%d outputs still undelivered at exit", left)

    @property
    def stores(self) -> dict[str, StateStore]:
        return {u.name: u.store for u in self.units}

    def _agent(self, unit: Unit):
        size, wait = self.settings.processor_batch_size, self.settings.processor_batch_wait

        async def process(stream: faust.StreamT) -> None:
            unit.stream = stream
            completer = asyncio.ensure_future(self._complete(unit))
            try:
                async for events in stream.noack_take(size, within=wait):
                    await self.process(unit, events)
            finally:
                try:
                    await asyncio.wait_for(unit.queue.join(), timeout=30)
                except asyncio.TimeoutError:
                    log.warning("%s: batches still in flight at stop; they will be redone", unit.name)
                completer.cancel()

        process.__name__ = unit.name
        return process

    async def process(self, unit: Unit, events: Sequence[faust.EventT]) -> None:
        """Compute a batch and hand its outputs to the producer; `_complete` finishes it."""
        await unit.slots.acquire()  # at most processor_in_flight batches sent but not done
        t0 = time.perf_counter()
        sources = [Source(m.topic, m.partition, m.offset, m.key, m.value, m.timestamp)
                   for m in (e.message for e in events)]
        self._check_offsets(unit, sources)
        records, poison = unit.decode(sources)
        groups: dict[tuple[int, str], list[Any]] = {}
        for r in records:
            groups.setdefault((r.src.partition, unit.key(r)), []).append(r)
        outbox = Outbox()
        unit.seq += 1
        keys = []
        items = list(groups.items())
        for ((partition, key), _), (state, outputs) in zip(items, self._apply_all(unit, items, poison)):
            keys.append(unit.store.stage(unit.seq, partition, key, state))
            for o in outputs:
                if o.topic == SLICES:
                    outbox.add(self.slices_topic, o.key, orjson.dumps(o.record), SLICE_HEADERS)
                else:
                    outbox.add_dict(self.settings.topic(o.topic), o.key, o.record, o.schema)
        for p in poison:
            add_dlq(outbox, self.settings.topic(DELTASTREAM_DLQ), p, self.service)
            log.warning("%s: %s[%d]@%d to the DLQ: %s", unit.name, p.src.topic, p.src.partition,
                        p.src.offset, p.reason)
        unit.counts.add("in", len(sources))
        unit.counts.add("dlq", len(poison))
        unit.counts.add("out", len(outbox))
        unit.counts.add("batches")
        unit.counts.add("ms_compute", round((time.perf_counter() - t0) * 1000))
        unit.queue.put_nowait(Batch(unit.seq, events, outbox.messages, keys,
                                    self.output.send(outbox.messages), time.perf_counter()))

    async def _complete(self, unit: Unit) -> None:
        """In batch order: wait for the outputs (retrying failures with backoff), then
        release the batch's state and ack its messages."""
        resend_until = 0  # after a failure, later in-flight batches are sent again
        while True:
            batch = await unit.queue.get()
            try:
                failed = await batch.sent
                if batch.seq <= resend_until:
                    failed = [(m, None) for m in batch.messages]
                if failed:
                    await self._retry(unit, failed)
                    resend_until = unit.seq
                unit.store.release(batch.seq, batch.keys)
                for event in batch.events:
                    await unit.stream.ack(event)
                unit.counts.add("ms_send", round((time.perf_counter() - batch.started) * 1000))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.critical("%s: outputs undeliverable, stopping: %r", unit.name, exc)
                await self.app.crash(exc)
                raise
            finally:
                unit.slots.release()
                unit.queue.task_done()

    async def _retry(self, unit: Unit, failed: list[tuple[Message, Any]]) -> None:
        delays = self.retry.delays()
        while failed:
            delay = next(delays, None)
            if delay is None:
                raise RuntimeError(f"{len(failed)} messages undeliverable after "
                                   f"{self.retry.attempts} attempts: {failed[0][1]}")
            if failed[0][1] is not None:
                log.warning("%s: %d sends failed (%s); retrying in %.1fs", unit.name, len(failed),
                            failed[0][1], delay)
                unit.counts.add("retries")
                await asyncio.sleep(delay)
            failed = await self.output.send([m for m, _ in failed])

    def _check_offsets(self, unit: Unit, sources: Sequence[Source]) -> None:
        """Input offsets must follow each other per partition (the broker never skips one
        for these topics); a jump means messages were lost on the way to this agent."""
        for src in sources:
            tp = (src.topic, src.partition)
            expected = self._next_offset.get(tp)
            if expected is not None and src.offset > expected:
                unit.counts.add("gaps")
                log.error("%s: offsets %d-%d of %s[%d] never reached the processor", unit.name,
                          expected, src.offset - 1, src.topic, src.partition)
            if expected is None or src.offset >= expected:
                self._next_offset[tp] = src.offset + 1

    def _apply_all(self, unit: Unit, items: list[tuple[tuple[int, str], list[Any]]],
                   poison: list[Poison]) -> Iterator[tuple[dict, list[Any]]]:
        """(state, outputs) per group, lazily: the caller stages each state before the next
        group is computed. A processor with `apply_many` (vectorised across keys) gets the
        whole batch at once; if that fails, or a key came from two partitions (its second
        group must see the state of its first), it goes key by key."""
        many = getattr(unit.processor, "apply_many", None)
        if many is not None and len(items) > 1 and len({k for (_, k), _ in items}) == len(items):
            try:
                results = many([(key, unit.store.get(key), recs) for (_, key), recs in items])
            except Exception:
                log.exception("%s: batch failed; retrying key by key", unit.name)
            else:
                yield from results
                return
        for (_, key), recs in items:
            yield self._apply(unit, key, recs, poison)

    def _apply(self, unit: Unit, key: str, records: list[Any], poison: list[Poison]):
        try:
            return unit.processor.apply(key, unit.store.get(key), records)
        except Exception:
            log.exception("%s: batch for %s failed; retrying record by record", unit.name, key)
        state, outputs = unit.store.get(key), []
        for r in records:
            try:
                state_copy = None if state is None else orjson.loads(orjson.dumps(state))
                state_copy, out = unit.processor.apply(key, state_copy, [r])
            except Exception as exc:
                poison.append(Poison(r.src, f"processing failed: {exc!r}", type(exc).__name__))
            else:
                state, outputs = state_copy, outputs + out
        return (state if state is not None else {}), outputs

    async def _on_revoked(self, app: faust.App, revoked: set, **kwargs: Any) -> None:
        for tp in revoked:  # whoever gets it next starts from the committed offset
            self._next_offset.pop((tp.topic, tp.partition), None)
        # A commit (which writes pending state) has run by now; whatever is still pending
        # belongs to offsets that were not committed and will be processed again elsewhere.
        for unit in self.units:
            unit.store.forget(tp.partition for tp in revoked if tp.topic in
                              (unit.topic, unit.store.table.changelog_topic.get_topic_name()))

    async def _on_assigned(self, app: faust.App, assigned: set, **kwargs: Any) -> None:
        inputs = {u.topic for u in self.units}
        mine: dict[str, list[int]] = {}
        for tp in assigned:
            if tp.topic in inputs:
                mine.setdefault(tp.topic, []).append(tp.partition)
        log.info("partitions assigned: %s", "; ".join(
            f"{t} {sorted(p)}" for t, p in sorted(mine.items())) or "none")

    async def _report(self) -> None:
        parts = []
        for unit in self.units:
            c = unit.counts.c
            n = c["in"] - self._last_report.get(unit.name, 0)
            self._last_report[unit.name] = c["in"]
            if n:
                parts.append(f"{unit.name} +{n} ({', '.join(f'{k} {v}' for k, v in sorted(c.items()))})")
        if parts:
            log.info("processed: %s", "; ".join(parts))


def _decoder(kind: Kind) -> Callable[[Sequence[Source]], tuple[list[Any], list[Poison]]]:
    return lambda sources: decode_many(kind, sources)


def now_us() -> int:
    return time.time_ns() // 1000
