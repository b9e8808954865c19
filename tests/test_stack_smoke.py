# SPDX-License-Identifier: Apache-2.0
"""Smoke test of the local stack: a real PostgreSQL and the mock Kafka broker, used through
independent clients (psycopg, confluent_kafka). Run: /usr/bin/python3 -m pytest -q
tests/test_stack_smoke.py (needs bin/otp-kafka-broker: `make`)."""

import subprocess
import uuid

import psycopg
import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from stack import Stack, StackError
from testkit import wait_until


@pytest.fixture
def stack():
    s = Stack()
    try:
        yield s
    finally:
        s.stop()


def consumer_conf(bootstrap, group):
    return {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "session.timeout.ms": 6000,  # see DESIGN.md: mock broker rejoin waits this long
    }


def test_postgres_query_restart(stack):
    url = stack.start_postgres()
    assert url == "postgresql://otp@127.0.0.1:%d/otp" % stack.pg_port
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT current_user, current_database(), current_setting('fsync'),"
            " current_setting('max_connections'), current_setting('listen_addresses'),"
            " inet_server_addr()::text").fetchone()
        assert row == ("otp", "otp", "on", "200", "127.0.0.1", "127.0.0.1/32")
        conn.execute("CREATE TABLE t (id int PRIMARY KEY, v text)")
        conn.execute("INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 100) g")

    stack.restart_postgres()
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT count(*), max(v) FROM t").fetchone() == (100, "v99")

    stack.restart_postgres(mode="immediate")  # crash recovery keeps committed rows
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM t").fetchone() == (100,)


def test_postgres_fast_mode(stack):
    with psycopg.connect(stack.start_postgres(fast=True)) as conn:
        assert conn.execute("SELECT current_setting('fsync'), current_setting('synchronous_commit'),"
                            " current_setting('full_page_writes')").fetchone() == ("off", "off", "off")


def test_kafka_produce_consume_commit(stack):
    bootstrap = stack.start_kafka(brokers=3)
    assert len(bootstrap.split(",")) == 3
    assert all(h.startswith("127.0.0.1:") for h in bootstrap.split(","))

    topics = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10).topics
    assert len(topics["otp.requested"].partitions) == 6
    assert len(topics["otp.call_status"].partitions) == 6
    assert len(topics["otp.requested.dlq"].partitions) == 1

    sent = {"req-%d" % i: b"payload-%d" % i for i in range(500)}
    delivered = []
    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all"})
    for k, v in sent.items():
        p.produce("otp.requested", key=k.encode(), value=v,
                  on_delivery=lambda err, msg: delivered.append((err, msg.partition())))
    assert p.flush(30) == 0
    assert len(delivered) == len(sent)
    assert all(err is None for err, _ in delivered)
    assert len({part for _, part in delivered}) > 1  # keys spread over partitions

    group = "smoke-%s" % uuid.uuid4().hex[:8]
    c = Consumer(consumer_conf(bootstrap, group))
    c.subscribe(["otp.requested"])
    got = {}

    def all_read():
        m = c.poll(0.5)
        if m is not None:
            assert m.error() is None, m.error()
            got[m.key().decode()] = m.value()
        return len(got) >= len(sent)
    wait_until(all_read, 30, "all %d messages read back" % len(sent), interval=0,
               state=lambda: "read %d" % len(got))
    assert got == sent
    c.commit(asynchronous=False)
    c.close()

    # Another consumer (another client instance) sees the group's committed offsets at the end.
    c2 = Consumer(consumer_conf(bootstrap, group))
    parts = [TopicPartition("otp.requested", i) for i in range(6)]
    committed = c2.committed(parts, timeout=10)
    ends = [c2.get_watermark_offsets(tp, timeout=10)[1] for tp in parts]
    assert [tp.offset for tp in committed] == ends
    assert sum(ends) == len(sent)
    c2.close()


def test_kafka_separate_processes(stack):
    """Producer and consumer in other processes than the broker and than each other."""
    bootstrap = stack.start_kafka(topics="smoke:2")
    prog = (
        "import sys\n"
        "from confluent_kafka import Producer\n"
        "p = Producer({'bootstrap.servers': sys.argv[1], 'enable.idempotence': True})\n"
        "for i in range(50): p.produce('smoke', key=b'%d' % i, value=b'x%d' % i)\n"
        "sys.exit(p.flush(20))\n"
    )
    subprocess.run(["/usr/bin/python3", "-c", prog, bootstrap], check=True, timeout=60)
    prog = (
        "import sys, time\n"
        "from confluent_kafka import Consumer\n"
        "c = Consumer({'bootstrap.servers': sys.argv[1], 'group.id': 'g', 'session.timeout.ms': 6000,"
        " 'auto.offset.reset': 'earliest', 'enable.auto.commit': False})\n"
        "c.subscribe(['smoke']); n = 0; end = time.time() + 30\n"
        "while n < 50 and time.time() < end:\n"
        "    m = c.poll(0.5)\n"
        "    if m is not None and not m.error(): n += 1\n"
        "c.commit(asynchronous=False); c.close(); print(n)\n"
    )
    out = subprocess.run(["/usr/bin/python3", "-c", prog, bootstrap], check=True, timeout=60,
                         capture_output=True, text=True).stdout
    assert out.strip() == "50"


def test_kafka_fault_control(stack):
    bootstrap = stack.start_kafka(brokers=1)

    def metadata_ok(timeout):
        admin = AdminClient({"bootstrap.servers": bootstrap, "reconnect.backoff.max.ms": 100})
        try:
            return "otp.requested" in admin.list_topics(timeout=timeout).topics
        except KafkaException:
            return False

    assert metadata_ok(10)
    assert stack.kafka.control("down 1") == "ok down 1"
    assert not metadata_ok(2)
    assert stack.kafka.control("up 1") == "ok up 1"
    assert metadata_ok(10)

    assert stack.kafka.control("rtt 1 10") == "ok rtt 1 10"
    assert stack.kafka.control("error 0 NOT_LEADER_FOR_PARTITION 2") == \
        "ok error 0 6 NOT_LEADER_FOR_PARTITION 2"
    assert stack.kafka.control("clear") == "ok clear"
    assert stack.kafka.control("down 7").startswith("error ")
    assert stack.kafka.control("frobnicate").startswith("error unknown command")
    with pytest.raises(StackError):
        stack.kafka.control("down 9", check=True)


def test_spawn_ready_and_failure(stack):
    p = stack.spawn("echo", ["sh", "-c", "echo listening on port=4321 >&2; exec sleep 60"],
                    ready_line=r"port=(\d+)")
    assert p.ready_match.group(1) == "4321"
    assert p.alive()
    assert p.stop(timeout=5) == -15
    assert "port=4321" in p.log()

    with pytest.raises(StackError, match="exited with status 3"):
        stack.spawn("bad", ["sh", "-c", "echo boom; exit 3"], ready_line="never")
    with pytest.raises(StackError, match="not ready within"):
        stack.spawn("slow", ["sleep", "60"], ready_line="never", timeout=0.5)
