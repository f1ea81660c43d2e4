// A sink for the host's tests that writes each batch through every host interface the
// JavaScript SDK wraps, and reads it back through the same interfaces before it says the
// batch is flushed: rows into PostgreSQL (sql), one object per batch (objects), and the
// records to a Kafka topic, consumed again (kafka), and to a Kinesis stream, read again from
// its shards (kinesis). A read-back that differs is a
// FatalError, so a pipeline that succeeds has been through both directions of each.
import { FatalError, Record, Sink, kafka, kinesis, metrics, objects, sql } from '@weir/guest';

const decoder = new TextDecoder();
const text = (b) => decoder.decode(b);
const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);

export default class IoSink extends Sink {
  static spec = {
    name: 'js-io-sink',
    description: 'Writes and reads back through sql, objects and kafka (tests only).',
    configSchema: {
      type: 'object',
      properties: {
        table: { type: 'string' },
        prefix: { type: 'string' },
        topic: { type: 'string' },
        stream: { type: 'string' },
      },
      additionalProperties: false,
    },
  };

  constructor(config) {
    super();
    this.config = config;
    this.pending = [];
    if (config.table) {
      this.db = sql.connect();
      this.db.execute(`CREATE TABLE IF NOT EXISTS ${config.table} (n bigint PRIMARY KEY, doc jsonb NOT NULL)`);
    }
    if (config.topic) {
      this.producer = kafka.producer();
      this.consumer = kafka.consumer([config.topic]);
      this.seen = new Set();
    }
    this.readers = new Map();
    this.streamed = new Set();
  }

  write(records) {
    for (const r of records) this.pending.push(JSON.parse(text(r.value)));
  }

  flush() {
    if (this.pending.length === 0) return;
    const docs = this.pending;
    this.pending = [];
    const ns = docs.map((d) => d.n);
    if (this.db) this.sql(docs, ns);
    if (this.config.prefix) this.objects(docs, ns);
    if (this.config.topic) this.kafka(docs, ns);
    if (this.config.stream) this.kinesis(docs, ns);
    metrics.counterAdd('flushed', docs.length);
  }

  sql(docs, ns) {
    const table = this.config.table;
    this.db.transaction(
      docs.map((d) => [`INSERT INTO ${table} (n, doc) VALUES ($1, $2) ON CONFLICT (n) DO NOTHING`, [d.n, d]]),
    );
    const back = new Map();
    for (const row of this.db.rows(`SELECT n, doc FROM ${table} WHERE n BETWEEN $1 AND $2`, [Math.min(...ns), Math.max(...ns)], 7)) {
      back.set(Number(row.n), row.doc);
    }
    if (docs.some((d) => !same(back.get(d.n), d))) {
      throw new FatalError(`sql: read back ${back.size} rows that differ from the ${docs.length} written`);
    }
  }

  objects(docs, ns) {
    const key = `${this.config.prefix}/batch-${String(Math.min(...ns)).padStart(8, '0')}.jsonl`;
    const data = docs.map((d) => JSON.stringify(d) + '\n').join('');
    objects.write(key, data);
    if (text(objects.readAll(key, 1000)) !== data) throw new FatalError(`objects: ${key} read back differs`);
    if (![...objects.walk(`${this.config.prefix}/`, 2)].some((o) => o.key === key)) {
      throw new FatalError(`objects: ${key} is not listed`);
    }
  }

  kafka(docs, ns) {
    const topic = this.config.topic;
    this.producer.send(topic, docs.map((d) => new Record({ value: JSON.stringify(d), key: String(d.n) })));
    this.producer.flush(30000);
    const deadline = Date.now() + 60000;
    while (!ns.every((n) => this.seen.has(n))) {
      if (Date.now() > deadline) throw new FatalError(`kafka: records never came back from ${topic}`);
      const polled = this.consumer.poll(500, 500);
      for (const [record] of polled) this.seen.add(JSON.parse(text(record.value)).n);
      if (polled.length) this.consumer.commit(polled.map(([, o]) => ({ ...o, offset: o.offset + 1 })));
    }
  }

  kinesis(docs, ns) {
    const stream = this.config.stream;
    let todo = docs.map((d) => new Record({ value: JSON.stringify(d), key: String(d.n) }));
    while (todo.length) {
      const failed = kinesis.putRecords(stream, todo);
      todo = failed.map((f) => todo[f.index]);
    }
    const deadline = Date.now() + 60000;
    while (!ns.every((n) => this.streamed.has(n))) {
      if (Date.now() > deadline) throw new FatalError(`kinesis: records never came back from ${stream}`);
      for (const shard of kinesis.listShards(stream)) {
        if (!this.readers.has(shard.id)) this.readers.set(shard.id, kinesis.shardReader(stream, shard.id, 'trim-horizon'));
        let got;
        try {
          got = this.readers.get(shard.id).read(1000);
        } catch (e) {
          if (e.throttled) continue;
          throw e;
        }
        for (const r of got.records) this.streamed.add(JSON.parse(text(r.value)).n);
      }
    }
  }
}
