"""All DeltaStream configuration, in one place.

Every value comes from an environment variable with the ``DELTASTREAM_`` prefix (or a
``.env`` file), e.g. ``DELTASTREAM_KAFKA_BOOTSTRAP=broker:9092``. When the Kafka, MongoDB
or Redis URL is unset, DeltaStream runs (or expects) its embedded servers on loopback at
the default ports.
"""
from __future__ import annotations

import os
import secrets
from enum import Enum
from functools import lru_cache
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_PRODUCTS = ("NIFTY", "BANKNIFTY", "FINNIFTY", "SENSEX", "AAPL", "TSLA", "SPY", "QQQ")

Port = Annotated[int, Field(ge=1, le=65535)]
# A `limits` rate: "600/minute", "10 per 1 second", "100/hour"
_RATE_PATTERN = r"^\s*\d+\s*(/|per)\s*(\d+\s*)?(second|minute|hour|day)s?\s*$"


class BrokerProfile(str, Enum):
    """Client tuning per broker kind (see DESIGN.md, "Known limits")."""

    auto = "auto"
    embedded = "embedded"  # Tansu: one record per produced batch, short session timeouts
    kafka = "kafka"  # Apache Kafka: linger + compression for throughput


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="DELTASTREAM_", env_file=".env", extra="ignore", frozen=True
    )

    # -- where things live ---------------------------------------------------------
    data_dir: Path = Path(".deltastream")
    host: str = "127.0.0.1"  # bind address of the embedded servers and services

    # -- external servers (unset → embedded on loopback) --------------------------
    kafka_bootstrap: str | None = None
    mongo_url: str | None = None
    redis_url: str | None = None
    mongo_db: str = "deltastream"
    broker_profile: BrokerProfile = BrokerProfile.auto

    # -- ports ------------------------------------------------------------------------
    kafka_port: Port = 9092
    mongo_port: Port = 27017
    redis_port: Port = 6379
    api_port: Port = 8000
    auth_port: Port = 8001
    socket_port: Port = 8002
    storage_port: Port = 8003
    analytics_port: Port = 8004
    logs_port: Port = 8005
    ai_port: Port = 8006

    # -- separately deployed services (unset → mounted in the API gateway) ------------
    auth_url: str | None = None
    storage_url: str | None = None
    analytics_url: str | None = None
    logs_url: str | None = None
    ai_url: str | None = None
    loki_url: str | None = None

    # -- security ---------------------------------------------------------------------
    jwt_secret: str | None = Field(default=None, repr=False)
    jwt_algorithm: str = "HS256"
    access_token_minutes: int = Field(default=15, gt=0)
    refresh_token_days: int = Field(default=7, gt=0)
    cors_origins: list[str] = ["*"]

    # -- REST gateways ------------------------------------------------------------------
    rate_limit_user: str = Field(default="600/minute", pattern=_RATE_PATTERN,
                                 description="requests per authenticated user (shared via Redis)")
    rate_limit_ip: str = Field(default="1200/minute", pattern=_RATE_PATTERN,
                               description="requests per client IP (shared via Redis)")
    upstream_timeout_seconds: float = Field(
        default=10.0, gt=0, description="gateway → separately deployed service (DELTASTREAM_*_URL)")
    log_ship_level: str = Field(default="INFO", description="lowest level shipped to deltastream.logs "
                                                            "(and Loki); empty: do not ship")
    http_workers: int = Field(default=1, ge=1, le=64,
                              description="uvicorn worker processes per HTTP service (one port; rate limits "
                                          "stay shared through Redis): the way to scale a gateway on one host")
    http_otel: bool = Field(default=False,
                            description="FastAPI's native OpenTelemetry (spans/metrics to the global providers); "
                                        "off: the services export Prometheus at /metrics, and the per-request "
                                        "provider check costs ~10% of a request's CPU")

    # -- AI analyst (gateways/ai; models need the `.[ai]` extra) ------------------------
    ai_embedding_model: str | None = Field(
        default=None, description="local sentence-transformers model dir (default: the packaged all-MiniLM-L6-v2)")
    ai_sentiment_model: str | None = Field(
        default=None, description="local transformers text-classification model dir (default: a "
                                  "logistic head on the MiniLM embeddings, trained on gateways/ai/data/headlines.csv)")
    ai_generator: str = Field(
        default="template", description="text generator: 'template' (deterministic), 'smollm2' (the "
                                        "packaged SmolLM2-135M-Instruct GGUF), a local causal-LM dir, or an "
                                        "OpenAI-compatible chat-completions base URL (http[s]://...)")
    ai_generator_model: str | None = Field(default=None, description="model name sent to a hosted API")
    ai_api_key: str | None = Field(default=None, repr=False, description="bearer token of the hosted API")
    ai_top_k: int = Field(default=4, ge=1, le=20, description="documents retrieved per question")
    ai_max_text_chars: int = Field(default=4000, ge=100, description="longest question / news text accepted")
    ai_preload: bool = Field(default=True, description="load the models in the background at service start")

    # -- pipeline -------------------------------------------------------------------
    products: list[str] = list(DEFAULT_PRODUCTS)
    topic_prefix: str = ""  # e.g. "replay." to run a second, isolated pipeline
    processor_app_id: str = "deltastream-processors"
    log_level: str = "INFO"
    shutdown_grace_seconds: float = Field(
        default=6.0, ge=0, le=60, description="on Ctrl-C/SIGTERM of `up`: how long the embedded servers "
                                              "stay up so producers flush and sinks commit into them")

    # -- stream processors ------------------------------------------------------------
    processor_grace_seconds: float = Field(
        default=5.0, ge=0, description="event-time lateness an OHLC window still accepts after it ends")
    processor_bar_update_seconds: float = Field(
        default=1.0, ge=0, description="event time between two updates of an open OHLC bar (0: every batch)")
    processor_batch_size: int = Field(default=2000, ge=1, description="most records per processing batch")
    processor_batch_wait: float = Field(default=0.01, gt=0, description="seconds a batch waits to fill")
    processor_fetch_max_bytes: int = Field(
        default=8 * 1024 * 1024, ge=65536,
        description="most bytes fetched per partition at once (Faust's 1 MiB default holds ~28 "
                    "chain snapshots: batches that small cost ~10% more CPU per snapshot)")
    processor_in_flight: int = Field(
        default=8, ge=1, description="batches per agent computed and sent but not yet acknowledged")
    processor_report_seconds: float = Field(
        default=30.0, gt=0, description="seconds between the worker's 'processed: ...' log lines")

    # -- synthetic feed -------------------------------------------------------------
    feed_interval: float = Field(default=1.0, gt=0, description="seconds between market snapshots")
    feed_strikes_per_side: int = Field(default=10, ge=1, le=500)
    feed_expiries: int = Field(default=3, ge=1, le=12)
    feed_seed: int | None = None  # set for a reproducible market
    feed_time_scale: float = Field(default=1.0, gt=0, description="market seconds per wall second")
    feed_publish_quotes: bool = True  # per-option records on market.option_quotes

    # -- sinks --------------------------------------------------------------------------
    sink_batch_size: int = Field(default=2000, ge=1, description="most records written per sink batch")
    sink_max_latency_ms: int = Field(
        default=250, ge=1, description="how long a partly filled batch waits before it is written")
    sink_eager: bool = Field(
        default=True, description="the Redis sink writes a partly filled batch as soon as the "
                                  "consumer has caught up and the writer is idle (else: it waits "
                                  "for a full batch or sink_max_latency_ms, as the MongoDB sink does)")
    sink_validate: bool = Field(
        default=True, description="validate every record against its schema model (else: JSON "
                                  "object with the required fields and parseable timestamps)")
    sink_retry_backoff_max_seconds: float = Field(
        default=10.0, gt=0, description="longest wait between two retries of a failed write")
    sink_retry_max_seconds: float = Field(
        default=0.0, ge=0, description="give up (exit with an error) after retrying a batch this "
                                       "long; 0: retry until stopped")
    sink_shutdown_seconds: float = Field(
        default=10.0, ge=0, description="on SIGTERM, how long the last batch may keep retrying")
    mongo_logs_retention_days: float = Field(default=7.0, ge=0, description="TTL of `logs` (0: keep)")
    mongo_dlq_retention_days: float = Field(default=0.0, ge=0, description="TTL of `dlq` (0: keep)")
    redis_latest_ttl_seconds: int = Field(default=86_400, ge=1, description="TTL of latest:* keys")
    redis_history_len: int = Field(default=1000, ge=1, description="entries kept per history:{room}")

    # -- WebSocket gateway ----------------------------------------------------------------
    socket_queue_size: int = Field(
        default=1000, ge=8, description="messages queued per slow client before it is skipped ahead")
    socket_slow_policy: str = Field(
        default="skip", pattern=r"^(skip|disconnect)$",
        description="slow client whose queue is full: skip ahead to the latest value per room, or disconnect")
    socket_max_message_bytes: int = Field(
        default=65_536, ge=256, description="largest client frame accepted (larger: error event)")
    socket_ping_interval: float = Field(default=20.0, gt=0, description="seconds between heartbeat pings")
    socket_ping_timeout: float = Field(default=20.0, gt=0, description="close a client whose pong is this late")
    socket_auth_timeout: float = Field(default=10.0, gt=0, description="seconds to send the token as first message")

    # -- web dashboard (gateways/dashboard, served by the API gateway) ------------------
    dashboard_socket_url: str | None = Field(
        default=None, description="WebSocket URL the dashboard page connects to (e.g. behind a "
                                  "proxy: wss://host/ws); unset: ws://<page host>:<socket_port>/ws")

    @field_validator("kafka_bootstrap")
    @classmethod
    def _check_bootstrap(cls, v: str | None) -> str | None:
        if v is None or v == "":
            return None
        for server in v.split(","):
            host, sep, port = server.strip().rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"expected host:port[,host:port...], got {v!r}")
        return v

    @field_validator("mongo_url")
    @classmethod
    def _check_mongo(cls, v: str | None) -> str | None:
        if not v:
            return None
        if urlsplit(v).scheme not in ("mongodb", "mongodb+srv"):
            raise ValueError(f"expected mongodb://host:port, got {v!r}")
        return v

    @field_validator("redis_url")
    @classmethod
    def _check_redis(cls, v: str | None) -> str | None:
        if not v:
            return None
        if urlsplit(v).scheme not in ("redis", "rediss", "unix"):
            raise ValueError(f"expected redis://host:port[/db], got {v!r}")
        return v

    @field_validator("products")
    @classmethod
    def _check_products(cls, v: list[str]) -> list[str]:
        cleaned = [p.strip().upper() for p in v if p.strip()]
        if not cleaned:
            raise ValueError("at least one product is required")
        return cleaned

    @model_validator(mode="after")
    def _distinct_ports(self) -> "Settings":
        seen: dict[int, str] = {}
        for name, port in self.ports().items():
            if port in seen:
                raise ValueError(f"{name} and {seen[port]} both use port {port}")
            seen[port] = name
        return self

    # -- derived values ---------------------------------------------------------------
    def ports(self) -> dict[str, int]:
        """Every listening port by setting name (``kafka_port`` → 9092, ...)."""
        return {name: getattr(self, name) for name in type(self).model_fields if name.endswith("_port")}

    @property
    def embedded_kafka(self) -> bool:
        return self.kafka_bootstrap is None

    @property
    def embedded_mongo(self) -> bool:
        return self.mongo_url is None

    @property
    def embedded_redis(self) -> bool:
        return self.redis_url is None

    @property
    def kafka_servers(self) -> str:
        return self.kafka_bootstrap or f"127.0.0.1:{self.kafka_port}"

    @property
    def mongo_uri(self) -> str:
        return self.mongo_url or f"mongodb://127.0.0.1:{self.mongo_port}"

    @property
    def redis_uri(self) -> str:
        return self.redis_url or f"redis://127.0.0.1:{self.redis_port}/0"

    @property
    def profile(self) -> BrokerProfile:
        """The effective broker profile: embedded Tansu unless a Kafka URL is given."""
        if self.broker_profile is not BrokerProfile.auto:
            return self.broker_profile
        return BrokerProfile.embedded if self.embedded_kafka else BrokerProfile.kafka

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}{name}"

    def resolved_jwt_secret(self) -> str:
        """The JWT secret: from the env, else generated once and kept under the data dir."""
        if self.jwt_secret:
            return self.jwt_secret
        path = self.data_dir / "jwt_secret"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            # Write aside, then link into place: link fails if another process won the
            # race, so every process ends up reading the same, complete secret.
            tmp = path.with_name(f".jwt_secret.{os.getpid()}")
            tmp.write_text(secrets.token_urlsafe(48))
            tmp.chmod(0o600)
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass
            finally:
                tmp.unlink()
        return path.read_text().strip()


@lru_cache
def get_settings() -> Settings:
    return Settings()
