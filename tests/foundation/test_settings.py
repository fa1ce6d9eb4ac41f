from __future__ import annotations

import pytest
from pydantic import ValidationError

from deltastream.clients import consumer_config, producer_config
from deltastream.settings import BrokerProfile, Settings


def test_profile_follows_the_broker_and_can_be_forced():
    assert Settings(_env_file=None).profile is BrokerProfile.embedded
    assert Settings(_env_file=None, kafka_bootstrap="k:9092").profile is BrokerProfile.kafka
    forced = Settings(_env_file=None, kafka_bootstrap="k:9092", broker_profile="embedded")
    assert forced.profile is BrokerProfile.embedded


def test_embedded_profile_batches_only_when_asked():
    embedded = producer_config(Settings(_env_file=None))
    assert embedded["batch.num.messages"] == 1  # exact end offsets (changelogs)
    assert producer_config(Settings(_env_file=None), batched=True)["batch.num.messages"] > 1
    kafka = producer_config(Settings(_env_file=None, kafka_bootstrap="k:9092"))
    assert kafka["linger.ms"] >= 20 and kafka["compression.type"] in ("lz4", "zstd")
    assert embedded["compression.type"] == "lz4"  # aiokafka reads it through cramjam
    assert consumer_config(Settings(_env_file=None), "g")["session.timeout.ms"] == 6000


def test_jwt_secret_generated_once_and_kept(tmp_path):
    s = Settings(_env_file=None, data_dir=tmp_path)
    first = s.resolved_jwt_secret()
    assert len(first) >= 32
    assert Settings(_env_file=None, data_dir=tmp_path).resolved_jwt_secret() == first
    assert (tmp_path / "jwt_secret").stat().st_mode & 0o077 == 0
    assert Settings(_env_file=None, data_dir=tmp_path, jwt_secret="given").resolved_jwt_secret() == "given"


def test_env_prefix_and_port_clash(monkeypatch):
    monkeypatch.setenv("DELTASTREAM_REDIS_PORT", "7000")
    assert Settings(_env_file=None).redis_port == 7000
    with pytest.raises(ValidationError, match="both use port"):
        Settings(_env_file=None, redis_port=8000)
