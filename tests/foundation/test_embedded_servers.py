"""The embedded servers speak their real protocols to the ordinary clients."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import psutil
import pymongo
import redis
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from deltastream.clients import consumer_config, producer_config


def test_plain_kafka_clients_round_trip(stack, unique):
    topic = f"roundtrip-{unique}"
    admin = AdminClient({"bootstrap.servers": stack.settings.kafka_servers})
    admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])[topic].result(10)

    producer = Producer(producer_config(stack.settings))
    sent = {f"k{i}": f"v{i}" for i in range(20)}
    for key, value in sent.items():
        producer.produce(topic, key=key, value=value, headers=[("ds-schema", b"test.v1")])
    assert producer.flush(15) == 0

    consumer = Consumer(consumer_config(stack.settings, f"g-{unique}"))
    consumer.subscribe([topic])
    got: dict[str, str] = {}
    deadline = time.monotonic() + 30
    try:
        while len(got) < len(sent) and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            got[msg.key().decode()] = msg.value().decode()
            assert dict(msg.headers())["ds-schema"] == b"test.v1"
    finally:
        consumer.close()
    assert got == sent


def test_pymongo_upsert_and_query(stack):
    client = pymongo.MongoClient(stack.settings.mongo_uri, serverSelectionTimeoutMS=5000)
    coll = client["foundation_test"]["things"]
    coll.delete_many({})
    for _ in range(2):  # upsert twice: still one document
        coll.replace_one({"_id": "NIFTY:1"}, {"_id": "NIFTY:1", "price": 101.5}, upsert=True)
    assert coll.count_documents({}) == 1
    assert coll.find_one({"_id": "NIFTY:1"})["price"] == 101.5


def test_redis_set_get_and_pubsub(stack):
    client = redis.Redis.from_url(stack.settings.redis_uri)
    client.set("latest:test", "x", ex=60)
    assert client.get("latest:test") == b"x"
    assert 0 < client.ttl("latest:test") <= 60
    pubsub = client.pubsub()
    pubsub.subscribe("enriched:test")
    pubsub.get_message(timeout=2)  # subscribe confirmation
    client.publish("enriched:test", "hello")
    msg = pubsub.get_message(timeout=5)
    assert msg and msg["data"] == b"hello"
    pubsub.close()


def test_the_servers_of_a_killed_stack_die_with_it(tmp_path):
    """A test run or bench killed outright (SIGKILL, a CI timeout) leaves no server behind."""
    code = ("import json, sys, time, pathlib\n"
            "from deltastream.runtime.stack import start_stack\n"
            "with start_stack(pathlib.Path(sys.argv[1])) as stack:\n"
            "    print(json.dumps({n: p.pid for n, p in stack.processes.items()}), flush=True)\n"
            "    time.sleep(600)\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DELTASTREAM_")}
    owner = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, env=env)
    try:
        pids = json.loads(owner.stdout.readline())
        assert set(pids) == {"kafka", "mongodb", "redis"}
        assert all(psutil.pid_exists(pid) for pid in pids.values())
    finally:
        owner.send_signal(signal.SIGKILL)
        owner.wait()
    deadline = time.monotonic() + 10
    alive = dict(pids)
    while alive and time.monotonic() < deadline:
        alive = {n: pid for n, pid in alive.items()
                 if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE}
        time.sleep(0.1)
    assert alive == {}, f"left running after their owner was killed: {alive}"
