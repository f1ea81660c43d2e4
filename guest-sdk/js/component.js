// Between the component bindings and a connector class: JSON in and out, packed records in
// and out, throws to typed errors. Bundled into the component by componentize.mjs; never
// imported under plain Node.js.

import { log as witLog } from 'weir:connector/log@0.1.0';
import { counterAdd } from 'weir:connector/metrics@0.1.0';
import { send } from 'weir:connector/http@0.1.0';
import {
  Batch,
  ConfigError,
  TransientError,
  FatalError,
  Record,
  bytes,
  host,
} from './index.js';

host.impl = {
  log: witLog,
  counterAdd,
  send(request) {
    try {
      return send(request);
    } catch (e) {
      // The host's typed error arrives as the thrown value's payload.
      const err = e?.payload ?? e;
      const message = err?.val ?? String(e);
      if (err?.tag === 'config') throw new ConfigError(message);
      if (err?.tag === 'transient') throw new TransientError(message);
      throw new FatalError(message);
    }
  },
};

/** Runs `call`, turning a throw into the contract's typed error, with the stack. */
function guarded(call) {
  try {
    return call();
  } catch (e) {
    if (e instanceof ConfigError) throw { tag: 'config', val: e.message };
    if (e instanceof TransientError) throw { tag: 'transient', val: e.message };
    const stack = e?.stack ? `\n${e.stack}` : '';
    throw { tag: 'fatal', val: `${e?.name ?? 'Error'}: ${e?.message ?? String(e)}${stack}` };
  }
}

const decoder = new TextDecoder();

const position = (text) => (text === undefined ? null : JSON.parse(text));

/** Packs records into one buffer: every key, value and header is a span of `data`. */
export function pack(records) {
  const chunks = [];
  let offset = 0;
  const headers = [];
  const items = [];
  const span = (b) => {
    chunks.push(b);
    const s = { offset, len: b.length };
    offset += b.length;
    return s;
  };
  for (const r of records) {
    if (!(r instanceof Record)) {
      items.push({ value: span(bytes(r)), headers: { offset: headers.length, len: 0 } });
      continue;
    }
    const first = headers.length;
    for (const [k, v] of r.headers) headers.push({ key: span(bytes(k)), value: span(bytes(v)) });
    items.push({
      key: r.key === undefined ? undefined : span(bytes(r.key)),
      value: r.value === undefined ? undefined : span(bytes(r.value)),
      headers: { offset: first, len: headers.length - first },
      timestampMs: r.timestampMs === undefined ? undefined : BigInt(r.timestampMs),
      op: r.op,
    });
  }
  const data = new Uint8Array(offset);
  let at = 0;
  for (const c of chunks) {
    data.set(c, at);
    at += c.length;
  }
  return { data, headers, items };
}

/** Records read in place: keys, values and headers are views of the batch's buffer. */
export function unpack({ data, headers, items }) {
  const get = (s) => data.subarray(s.offset, s.offset + s.len);
  return items.map(
    (r) =>
      new Record({
        value: r.value === undefined ? undefined : get(r.value),
        key: r.key === undefined ? undefined : get(r.key),
        headers: headers
          .slice(r.headers.offset, r.headers.offset + r.headers.len)
          .map((h) => [decoder.decode(get(h.key)), get(h.value)]),
        timestampMs: r.timestampMs === undefined ? undefined : Number(r.timestampMs),
        op: r.op,
      }),
  );
}

const deadLetter = (d) => ({
  key: d.key === undefined ? undefined : bytes(d.key),
  value: d.value === undefined ? undefined : bytes(d.value),
  reason: String(d.reason),
});

function batch(b) {
  if (!(b instanceof Batch)) throw new TypeError('expected a weir Batch');
  return {
    records: pack(b.records),
    deadLetters: b.deadLetters.map(deadLetter),
    checkpoint: JSON.stringify(b.cursor ?? null),
  };
}

const streamInfo = (s) => ({ name: s.name, schema: s.schema === undefined ? undefined : JSON.stringify(s.schema) });

/** The component's exports for `Connector`, named as the world `world` expects them. */
export function exportsFor(world, Connector) {
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
      guarded(() => Connector.check(JSON.parse(config)));
    },
  };
  const discover = (config) => guarded(() => Connector.discover(JSON.parse(config)).map(streamInfo));
  switch (world) {
    case 'batch-source': {
      class Reader {
        constructor(inner) {
          this.inner = inner;
        }
        static open(config, cursor) {
          return new Reader(guarded(() => new Connector(JSON.parse(config), position(cursor))));
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
          return new Stream(guarded(() => new Connector(JSON.parse(config), position(checkpoint))));
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
          return new Writer(guarded(() => new Connector(JSON.parse(config))));
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
    default:
      throw new Error(`unknown world ${world}`);
  }
}
