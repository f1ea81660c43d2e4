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
