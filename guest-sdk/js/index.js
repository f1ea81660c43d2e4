// Write weir connectors in JavaScript.
//
// Extend one of BatchSource, StreamSource, Sink or Transform and make it the module's
// default export;
// `weir-componentize WORLD connector.js out.wasm` builds the component. The semantics are
// the Rust SDK's: the host validates `config` against `spec.configSchema` before the class
// sees it, commits a batch's checkpoint only after the sink flushed it, and retries
// TransientErrors. Any other throw stops the pipeline, with its stack in the host's log.
//
// Nothing here needs the component bindings, so a connector's logic runs under plain
// Node.js too (`node --test`): log goes to stderr, counters to `metrics.counters`.

export class WeirError extends Error {}
/** The configuration cannot work; the host does not retry. */
export class ConfigError extends WeirError {}
/** A passing failure (a server away, a timeout); the host retries with backoff. */
export class TransientError extends WeirError {}
/** Anything else that should stop the pipeline; an uncaught throw is one too. */
export class FatalError extends WeirError {}

const decoder = new TextDecoder();
const encoder = new TextEncoder();

/** Bytes from a Uint8Array, a string, or any JSON-serialisable value. */
export function bytes(value) {
  // Not `instanceof`: the bindings' byte lists may come from another realm's Uint8Array.
  if (ArrayBuffer.isView(value)) return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  if (typeof value === 'string') return encoder.encode(value);
  return encoder.encode(JSON.stringify(value));
}

/** One record. A source may also hand a Uint8Array, a string or any JSON value instead:
 * it becomes the value. `value` undefined is a tombstone. */
export class Record {
  constructor({ value, key, headers = [], timestampMs, op } = {}) {
    this.value = value;
    this.key = key;
    /** [name, Uint8Array] pairs. */
    this.headers = headers;
    /** Milliseconds since the Unix epoch, a number. */
    this.timestampMs = timestampMs;
    /** 'create', 'update', 'delete' or 'snapshot' for change records. */
    this.op = op;
  }
  text() {
    return this.value === undefined ? undefined : decoder.decode(this.value);
  }
  json() {
    return this.value === undefined ? undefined : JSON.parse(this.text());
  }
}

/** Input a connector could not handle, and why: the host stores it at the pipeline's
 * dead-letter destination instead of stopping or dropping it. */
export class DeadLetter {
  constructor(value, reason, key) {
    this.value = value;
    this.reason = reason;
    this.key = key;
  }
  static of(record, reason) {
    return new DeadLetter(record.value, reason, record.key);
  }
}

/** Records and the position reached after them (any JSON-serialisable value). */
export class Batch {
  constructor(records, checkpoint = null, deadLetters = []) {
    this.records = records;
    this.checkpoint = checkpoint;
    this.deadLetters = deadLetters;
  }
}

class Connector {
  /** `{ name, version, description, configSchema }`; the host validates every config
   * against `configSchema`. */
  static spec = { name: '', version: '0.1.0', description: '', configSchema: { type: 'object' } };
  /** Can the config work (credentials, reachable servers)? Throw to say no. */
  static check(_config) {}
}

/** A bounded read run on a schedule: `constructor(config, checkpoint)`, `next(maxRecords)`
 * returning a Batch, or undefined once the data at hand is exhausted. */
export class BatchSource extends Connector {
  /** [{ name, schema }] of what the source can read. */
  static discover(_config) {
    return [];
  }
}

/** An unbounded read: `constructor(config, checkpoint)`, `poll(maxRecords, maxWaitMs)`
 * returning a Batch (empty is a normal answer), and `ack(checkpoint)` once the host
 * committed it. */
export class StreamSource extends Connector {
  static discover(_config) {
    return [];
  }
  ack(_checkpoint) {}
}

/** Delivery: `constructor(config)`, `write(records)` returning the DeadLetters it rejects
 * (or nothing), and `flush()`: when it returns, every record written before is durable. */
export class Sink extends Connector {}

/** A step between a pipeline's source and its sink, called once per batch:
 * `constructor(config)` and `process(records)` returning what to pass on, any number of
 * outputs, each a Record (return an input, changed, to keep its key and headers) or a
 * value as a source may hand one, with a DeadLetter among them for each record rejected.
 * It keeps no durable state: the host may open a new one at any checkpoint. */
export class Transform extends Connector {}

/** The host's imports; set by the component glue, absent under plain Node.js. */
export const host = { impl: undefined };

function fields(f) {
  return Object.entries(f ?? {}).map(([k, v]) => [k, String(v)]);
}

function emit(level, message, f) {
  if (host.impl) host.impl.log(level, message, fields(f));
  else console.error(level.toUpperCase(), message, JSON.stringify(f ?? {}));
}

/** Logs into the host's log, tagged with tenant, pipeline and plugin. */
export const log = {
  trace: (message, f) => emit('trace', message, f),
  debug: (message, f) => emit('debug', message, f),
  info: (message, f) => emit('info', message, f),
  warn: (message, f) => emit('warn', message, f),
  error: (message, f) => emit('error', message, f),
};

/** Counters the host reports in the pipeline's summary. */
export const metrics = {
  counters: {},
  counterAdd(name, value = 1) {
    if (host.impl) host.impl.counterAdd(name, BigInt(value));
    else metrics.counters[name] = (metrics.counters[name] ?? 0) + value;
  },
  /** A value that goes up and down (a lag): the last one set is reported. */
  gaugeSet(name, value) {
    if (host.impl) host.impl.gaugeSet(name, BigInt(value));
    else metrics.counters[name] = value;
  },
};

/** Keyed hashes through the host: the key is a secret the pipeline grants by name
 * (`grants.keys`) and never enters the plugin. */
export const keys = {
  hmacSha256(name, messages) {
    if (!host.impl) throw new Error('weir keys needs the weir host; it is not available under plain Node.js');
    return host.impl.hmacSha256(name, messages.map(bytes));
  },
};

/** Outgoing HTTP through the host, to the hosts the pipeline grants. Redirects are
 * returned, not followed. An ungranted host throws ConfigError; a failed connection or a
 * timeout throws TransientError. */
export const http = {
  send({ method = 'GET', url, headers = {}, body, timeoutMs } = {}) {
    if (!host.impl) throw new Error('weir http needs the weir host; it is not available under plain Node.js');
    const r = host.impl.send({
      method,
      url,
      headers: Object.entries(headers),
      body: body === undefined ? undefined : bytes(body),
      timeoutMs,
    });
    return {
      status: r.status,
      headers: r.headers,
      body: r.body,
      header: (name) => r.headers.find(([k]) => k.toLowerCase() === name.toLowerCase())?.[1],
      text: () => decoder.decode(r.body),
      json: () => JSON.parse(decoder.decode(r.body)),
    };
  },
  get(url, options = {}) {
    return http.send({ ...options, method: 'GET', url });
  },
  post(url, body, options = {}) {
    return http.send({ ...options, method: 'POST', url, body });
  },
};

function need(name) {
  if (!host.impl) throw new Error(`weir ${name} needs the weir host; it is not available under plain Node.js`);
  return host.impl[name];
}

/** A SQL parameter: null, a boolean, an integer (number or BigInt), a float, a string,
 * bytes, or any other value as JSON. */
function sqlValue(v) {
  if (v === null || v === undefined) return { tag: 'null' };
  if (typeof v === 'boolean') return { tag: 'boolean', val: v };
  if (typeof v === 'bigint') return { tag: 'int', val: v };
  if (typeof v === 'number') return Number.isInteger(v) ? { tag: 'int', val: BigInt(v) } : { tag: 'float', val: v };
  if (typeof v === 'string') return { tag: 'text', val: v };
  if (ArrayBuffer.isView(v)) return { tag: 'bytes', val: bytes(v) };
  return { tag: 'json', val: JSON.stringify(v) };
}

/** One connection to the database the pipeline grants (`grants.sql`); the URL, user and
 * password stay in the host. Parameters are `$1`, `$2`, ...; rows are objects, column name
 * to value, in the query's column order. */
class SqlConnection {
  constructor() {
    this.conn = need('sql').open();
  }
  /** Runs one statement in a transaction of its own; the rows it affected. */
  execute(statement, ...params) {
    return Number(host.impl.sql.execute(this.conn, statement, params.map(sqlValue)));
  }
  /** Runs `[statement, params]` pairs in one transaction: all apply, or none. */
  transaction(statements) {
    const all = statements.map(([sql, params = []]) => ({ sql, params: params.map(sqlValue) }));
    // Array.from: the bindings hand a list<u64> over as a BigUint64Array, whose own map
    // would have to store numbers back as BigInts.
    return Array.from(host.impl.sql.transaction(this.conn, all), Number);
  }
  /** Starts reading a query's rows from a server-side cursor (ending the last). */
  query(statement, ...params) {
    host.impl.sql.query(this.conn, statement, params.map(sqlValue));
  }
  /** The next rows, at most `maxRows`; fewer means the query is exhausted. */
  fetch(maxRows = 1000) {
    return host.impl.sql.fetch(this.conn, maxRows).map((r) => JSON.parse(decoder.decode(r.value)));
  }
  /** Every row of a query, fetched `chunk` at a time. */
  *rows(statement, params = [], chunk = 1000) {
    this.query(statement, ...params);
    for (;;) {
      const rows = this.fetch(chunk);
      yield* rows;
      if (rows.length < chunk) return;
    }
  }
}

export const sql = {
  connect: () => new SqlConnection(),
};

/** Object storage the pipeline grants (`grants.objects`): keys are relative to the granted
 * prefix and cannot leave it; credentials stay in the host. */
export const objects = {
  /** Objects whose keys start with `prefix` and sort after `startAfter`, in key order:
   * `{key, size, etag, lastModifiedMs}`. */
  list(prefix = '', startAfter = undefined, max = 1000) {
    return need('objects')
      .list(prefix, startAfter, max)
      .map((o) => ({ key: o.key, size: Number(o.size), etag: o.etag, lastModifiedMs: Number(o.lastModifiedMs) }));
  },
  /** Every object under `prefix`, listed a page at a time. */
  *walk(prefix = '', page = 1000) {
    let after;
    for (;;) {
      const found = objects.list(prefix, after, page);
      yield* found;
      if (found.length < page) return;
      after = found[found.length - 1].key;
    }
  },
  /** Bytes `offset .. offset + length` of an object (fewer at its end). */
  read(key, offset = 0, length = 4 << 20) {
    return need('objects').read(key, BigInt(offset), length);
  },
  /** A whole object, read `piece` bytes at a time. */
  readAll(key, piece = 4 << 20) {
    const parts = [];
    let offset = 0;
    for (;;) {
      const part = objects.read(key, offset, piece);
      parts.push(part);
      offset += part.length;
      if (part.length < piece) break;
    }
    const all = new Uint8Array(offset);
    let at = 0;
    for (const p of parts) {
      all.set(p, at);
      at += p.length;
    }
    return all;
  },
  /** Writes a whole object, replacing any of that key; durable when it returns. */
  write(key, data) {
    need('objects').write(key, bytes(data));
  },
};

const position = ({ topic, partition, offset }) => ({ topic, partition, offset: BigInt(offset) });

/** Kafka through the host: brokers, group and client properties come from the pipeline's
 * grants (`grants.kafka`), and only the topics they name may be used. */
export const kafka = {
  /** Joins the granted group on `topics`; assigned partitions start at `positions`
   * (`{topic, partition, offset}`) where given, else at the group's committed offsets. */
  consumer(topics, positions = []) {
    const consumer = need('kafka').consumer(topics, positions.map(position));
    return {
      /** At most `maxRecords` `[record, origin]` pairs, waiting at most `timeoutMs`. An
       * origin is `{topic, partition, offset}`; commit `offset + 1` once it is delivered. */
      poll(maxRecords, timeoutMs) {
        const { records, origins, topics: names } = host.impl.kafka.poll(consumer, maxRecords, timeoutMs);
        return records.map((r, i) => [
          r,
          { topic: names[origins[i].topic], partition: origins[i].partition, offset: Number(origins[i].offset) },
        ]);
      },
      commit(positions) {
        host.impl.kafka.commit(consumer, positions.map(position));
      },
      /** Records the assigned partitions hold past this consumer (undefined while it has
       * none assigned). */
      backlog() {
        const n = host.impl.kafka.backlog(consumer);
        return n === undefined ? undefined : Number(n);
      },
    };
  },
  /** An idempotent producer with `acks=all`. */
  producer() {
    const producer = need('kafka').producer();
    return {
      /** Queues records (Record, bytes, strings or JSON values) for `topic`, by key. */
      send(topic, records) {
        host.impl.kafka.send(producer, topic, records);
      },
      /** Returns once every record sent so far is acknowledged by the brokers. */
      flush(timeoutMs = 30000) {
        host.impl.kafka.flush(producer, timeoutMs);
      },
    };
  },
};

/** Kinesis Data Streams through the host: region, endpoint and credentials come from the
 * pipeline's grants (`grants.kinesis`), and only the streams they name may be used. */
export const kinesis = {
  /** Every shard of a granted stream, closed ones in retention too. */
  listShards(stream) {
    return need('kinesis').listShards(stream);
  },
  /** Puts records (each record's key is its partition key) in one PutRecords call;
   * returns the failures (`{index, code, message}`) to put again. */
  putRecords(stream, records) {
    return need('kinesis').putRecords(stream, records);
  },
  /** One shard, read in order from `start`: 'trim-horizon', 'latest', or
   * `{atSequenceNumber}`, `{afterSequenceNumber}`, `{atTimestamp}`. Over the shard's read
   * limits, `read` throws a TransientError whose `throttled` is true. */
  shardReader(stream, shard, start = 'trim-horizon') {
    const reader = need('kinesis').shardReader(stream, shard, start);
    return {
      /** `{records, sequenceNumbers, ended, millisBehindLatest}`. */
      read(max = 10000) {
        return host.impl.kinesis.read(reader, max);
      },
    };
  },
};
