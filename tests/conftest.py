"""Session fixtures: the real Kafka-protocol, MongoDB-protocol and Redis servers.

By default the embedded servers (Tansu, nx-27017, redis-server) are started on free
loopback ports with fresh data dirs. Set DELTASTREAM_KAFKA_BOOTSTRAP, DELTASTREAM_MONGO_URL
and DELTASTREAM_REDIS_URL to run the same tests against servers of your own.
"""
from __future__ import annotations

import uuid
from typing import Iterator

import pytest

from tests.servers import PrivateMongo
from tests.stack import Stack, start_stack


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with start_stack(tmp_path_factory.mktemp("stack")) as running:
        yield running


@pytest.fixture(scope="session")
def sinks_mongo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateMongo]:
    """An nx-27017 with one file per database: `mongo_db` isolates a test's collections there
    (the stack's server keeps every database in one file, so names isolate nothing)."""
    mongo = PrivateMongo(tmp_path_factory.mktemp("sinks-mongo"))
    mongo.start()
    try:
        yield mongo
    finally:
        mongo.kill()


@pytest.fixture
def unique() -> str:
    """A fresh suffix for group ids / app ids / topic prefixes (a wedged Tansu group never recovers)."""
    return uuid.uuid4().hex[:10]
