"""A sink for the host's tests that writes each batch through every host interface the
Python SDK wraps, and reads it back through the same interfaces before it says the batch
is flushed: rows into PostgreSQL (`weir.sql`), one object per batch (`weir.objects`), and
the records to a Kafka topic, consumed again (`weir.kafka`), and to a Kinesis stream, read
again from its shards (`weir.kinesis`). A read-back that differs is a
FatalError, so a pipeline that succeeds has been through both directions of each."""

import json
import time

import weir


class IoSink(weir.Sink):
    name = "py-io-sink"
    description = "Writes and reads back through sql, objects and kafka (tests only)."
    config_schema = {
        "type": "object",
        "properties": {
            "table": {"type": "string"},
            "prefix": {"type": "string"},
            "topic": {"type": "string"},
            "stream": {"type": "string"},
        },
        "additionalProperties": False,
    }

    def __init__(self, config):
        self.config = config
        self.pending = []
        self.db = None
        if config.get("table"):
            self.db = weir.sql.connect()
            self.db.execute(f"CREATE TABLE IF NOT EXISTS {config['table']} (n bigint PRIMARY KEY, doc jsonb NOT NULL)")
        if config.get("topic"):
            self.producer = weir.kafka.Producer()
            self.consumer = weir.kafka.Consumer([config["topic"]])
            self.seen = set()
        self.readers = {}
        self.streamed = set()

    def write(self, records):
        self.pending.extend(json.loads(r.value) for r in records)

    def flush(self):
        if not self.pending:
            return
        docs, self.pending = self.pending, []
        ns = [d["n"] for d in docs]
        if self.db:
            self.sql(docs, ns)
        if self.config.get("prefix"):
            self.objects(docs, ns)
        if self.config.get("topic"):
            self.kafka(docs, ns)
        if self.config.get("stream"):
            self.kinesis(docs, ns)
        weir.metrics.counter_add("flushed", len(docs))

    def sql(self, docs, ns):
        table = self.config["table"]
        self.db.transaction(
            [(f"INSERT INTO {table} (n, doc) VALUES ($1, $2) ON CONFLICT (n) DO NOTHING", [d["n"], d]) for d in docs]
        )
        back = {row["n"]: row["doc"] for row in self.db.rows(f"SELECT n, doc FROM {table} WHERE n BETWEEN $1 AND $2", min(ns), max(ns), chunk=7)}
        if any(back.get(d["n"]) != d for d in docs):
            raise weir.FatalError(f"sql: read back {len(back)} rows that differ from the {len(docs)} written")

    def objects(self, docs, ns):
        key = f"{self.config['prefix']}/batch-{min(ns):08}.jsonl"
        data = "".join(json.dumps(d) + "\n" for d in docs).encode()
        weir.objects.write(key, data)
        if weir.objects.read_all(key, piece=1000) != data:
            raise weir.FatalError(f"objects: {key} read back differs")
        if key not in [o.key for o in weir.objects.walk(self.config["prefix"] + "/", page=2)]:
            raise weir.FatalError(f"objects: {key} is not listed")

    def kafka(self, docs, ns):
        topic = self.config["topic"]
        self.producer.send(topic, [weir.Record(json.dumps(d), key=str(d["n"])) for d in docs])
        self.producer.flush(30_000)
        deadline = time.monotonic() + 60
        while not set(ns) <= self.seen:
            if time.monotonic() > deadline:
                raise weir.FatalError(f"kafka: {len(set(ns) - self.seen)} records never came back from {topic}")
            polled = self.consumer.poll(500, 500)
            for record, _ in polled:
                self.seen.add(json.loads(record.value)["n"])
            if polled:
                self.consumer.commit([origin.position_after() for _, origin in polled])


    def kinesis(self, docs, ns):
        stream = self.config["stream"]
        todo = [weir.Record(json.dumps(d), key=str(d["n"])) for d in docs]
        while todo:
            failed = weir.kinesis.put_records(stream, todo)
            todo = [todo[f.index] for f in failed]
        deadline = time.monotonic() + 60
        while not set(ns) <= self.streamed:
            if time.monotonic() > deadline:
                raise weir.FatalError(f"kinesis: {len(set(ns) - self.streamed)} records never came back from {stream}")
            for shard in weir.kinesis.list_shards(stream):
                if shard.id not in self.readers:
                    self.readers[shard.id] = weir.kinesis.ShardReader(stream, shard.id, "trim-horizon")
                try:
                    got = self.readers[shard.id].read(1000)
                except weir.kinesis.Throttled:
                    time.sleep(0.2)
                    continue
                self.streamed.update(json.loads(r.value)["n"] for r in got.records)


Connector, SinkWrite = weir.export(IoSink)
