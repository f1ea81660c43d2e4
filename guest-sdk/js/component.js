// Between the component bindings and a connector class: JSON in and out, packed records in
// and out, throws to typed errors. Bundled into the component by componentize.mjs; never
// imported under plain Node.js.

import { log as witLog } from 'weir:connector/log@0.1.0';
import { counterAdd, gaugeSet } from 'weir:connector/metrics@0.1.0';
import { send } from 'weir:connector/http@0.1.0';
import { hmacSha256 } from 'weir:connector/keys@0.1.0';
import { Connection } from 'weir:connector/sql@0.1.0';
import { Consumer, Producer } from 'weir:connector/kafka@0.1.0';
import { list as listObjects, read as readObject, write as writeObject } from 'weir:connector/objects@0.1.0';
import { ShardReader, listShards, putRecords } from 'weir:connector/kinesis@0.1.0';
import { ConfigError, TransientError, FatalError, host } from './index.js';
import {
  batch,
  config as checkedConfig,
  deadLetter,
  guarded,
  pack,
  position,
  streamInfo,
  transformed,
  unpack,
} from './glue.js';

/** Calls a host import, turning its typed error into the SDK's error classes. */
function typed(call) {
  try {
    return call();
  } catch (e) {
    // The host's typed error arrives as the thrown value's payload.
    throw typedError(e?.payload ?? e);
  }
}

function typedError(err) {
  const message = err?.val ?? String(err);
  if (err?.tag === 'config') return new ConfigError(message);
  if (err?.tag === 'transient') return new TransientError(message);
  return new FatalError(message);
}

/** A Kinesis read: throttling is a TransientError that says so. */
function read(call) {
  try {
    return call();
  } catch (e) {
    const err = e?.payload ?? e;
    if (err?.tag === 'throttled') {
      const t = new TransientError(err.val);
      t.throttled = true;
      throw t;
    }
    throw typedError(err?.tag === 'other' ? err.val : err);
  }
}

const START = {
  atSequenceNumber: 'at-sequence-number',
  afterSequenceNumber: 'after-sequence-number',
  atTimestamp: 'at-timestamp',
};

function startAt(start) {
  if (typeof start === 'string') return { tag: start };
  const [[kind, val]] = Object.entries(start);
  return { tag: START[kind], val: kind === 'atTimestamp' ? BigInt(val) : val };
}

host.impl = {
  log: witLog,
  counterAdd,
  gaugeSet,
  send: (request) => typed(() => send(request)),
  hmacSha256: (name, messages) => typed(() => hmacSha256(name, messages)),
  sql: {
    open: () => typed(() => Connection.open()),
    execute: (c, statement, params) => typed(() => c.execute(statement, params)),
    transaction: (c, statements) => typed(() => c.transaction(statements)),
    query: (c, statement, params) => typed(() => c.query(statement, params)),
    fetch: (c, max) => unpack(typed(() => c.fetch(max))),
  },
  objects: {
    list: (prefix, startAfter, max) => typed(() => listObjects(prefix, startAfter, max)),
    read: (key, offset, len) => typed(() => readObject(key, offset, len)),
    write: (key, data) => typed(() => writeObject(key, data)),
  },
  kafka: {
    consumer: (topics, positions) => typed(() => Consumer.open(topics, positions)),
    poll: (c, max, timeoutMs) => {
      const polled = typed(() => c.poll(max, timeoutMs));
      return { records: unpack(polled.records), origins: polled.origins, topics: polled.topics };
    },
    commit: (c, positions) => typed(() => c.commit(positions)),
    backlog: (c) => typed(() => c.backlog()),
    producer: () => typed(() => Producer.open()),
    send: (p, topic, records) => typed(() => p.send(topic, pack(records))),
    flush: (p, timeoutMs) => typed(() => p.flush(timeoutMs)),
  },
  kinesis: {
    listShards: (stream) => typed(() => listShards(stream)),
    putRecords: (stream, records) => typed(() => putRecords(stream, pack(records))),
    shardReader: (stream, shard, start) => read(() => ShardReader.open(stream, shard, startAt(start))),
    read: (reader, max) => {
      const got = read(() => reader.read(max));
      return {
        records: unpack(got.records),
        sequenceNumbers: got.sequenceNumbers,
        ended: got.ended,
        millisBehindLatest: got.millisBehindLatest === undefined ? undefined : Number(got.millisBehindLatest),
      };
    },
  },
};

/** The component's exports for `Connector`, named as the world `world` expects them. */
export function exportsFor(world, Connector) {
  const parsed = (text) => checkedConfig(text, Connector.spec.configSchema);
  const connector = {
    spec() {
      const s = Connector.spec;
      return {
        name: s.name,
        version: s.version ?? '0.1.0',
        description: s.description ?? '',
        configSchema: JSON.stringify(s.configSchema ?? { type: 'object' }),
      };
    },
    check(config) {
      guarded(() => Connector.check(parsed(config)));
    },
  };
  const discover = (config) => guarded(() => Connector.discover(parsed(config)).map(streamInfo));
  switch (world) {
    case 'batch-source': {
      class Reader {
        constructor(inner) {
          this.inner = inner;
        }
        static open(config, checkpoint) {
          return new Reader(guarded(() => new Connector(parsed(config), position(checkpoint))));
        }
        next(max) {
          return guarded(() => {
            const b = this.inner.next(max);
            return b === undefined || b === null ? undefined : batch(b);
          });
        }
      }
      return { connector, batchRead: { discover, Reader } };
    }
    case 'stream-source': {
      class Stream {
        constructor(inner) {
          this.inner = inner;
        }
        static open(config, checkpoint) {
          return new Stream(guarded(() => new Connector(parsed(config), position(checkpoint))));
        }
        poll(max, waitMs) {
          return guarded(() => batch(this.inner.poll(max, waitMs)));
        }
        ack(checkpoint) {
          guarded(() => this.inner.ack(JSON.parse(checkpoint)));
        }
      }
      return { connector, streamRead: { discover, Stream } };
    }
    case 'sink': {
      class Writer {
        constructor(inner) {
          this.inner = inner;
        }
        static open(config) {
          return new Writer(guarded(() => new Connector(parsed(config))));
        }
        write(records) {
          return guarded(() => (this.inner.write(unpack(records)) ?? []).map(deadLetter));
        }
        flush() {
          guarded(() => this.inner.flush());
        }
      }
      return { connector, sinkWrite: { Writer } };
    }
    case 'transform': {
      class Transformer {
        constructor(inner) {
          this.inner = inner;
        }
        static open(config) {
          return new Transformer(guarded(() => new Connector(parsed(config))));
        }
        process(records) {
          return guarded(() => transformed(this.inner.process(unpack(records))));
        }
      }
      return { connector, transformRecords: { Transformer } };
    }
    default:
      throw new Error(`unknown world ${world}`);
  }
}
