// The SDK's glue that needs no component bindings: records packed and unpacked, throws
// turned into the contract's typed errors, checkpoints as JSON. component.js wires it to
// the bindings; test/glue.test.js runs it under plain Node.js.

import { Batch, ConfigError, DeadLetter, TransientError, Record, bytes } from './index.js';

/** Runs `call`, turning a throw into the contract's typed error, with the stack. */
export function guarded(call) {
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

/** A checkpoint as the connector wrote it; one that is not JSON (edited, or from
 * elsewhere) is a config error, as the contract asks, not a crash. */
export function position(text) {
  if (text === undefined) return null;
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new ConfigError(
      `this version cannot read the checkpoint it was given (${e.message}): reset it or set one it can read (weir checkpoint)`,
    );
  }
}

const TYPES = {
  string: (v) => typeof v === 'string',
  integer: (v) => Number.isInteger(v),
  number: (v) => typeof v === 'number',
  boolean: (v) => typeof v === 'boolean',
  array: (v) => Array.isArray(v),
  object: (v) => v !== null && typeof v === 'object' && !Array.isArray(v),
};

/** The config, held to the top of `schema` (the fields it requires, the ones it allows,
 * their types), so that a call outside a pipeline, where the host has not validated it,
 * still fails as a config error naming the field. */
export function config(text, schema = { type: 'object' }) {
  const value = JSON.parse(text);
  if (!TYPES.object(value)) throw new ConfigError('config: expected a JSON object');
  for (const name of schema.required ?? []) {
    if (!(name in value)) throw new ConfigError(`config: missing field \`${name}\``);
  }
  const properties = schema.properties ?? {};
  for (const [name, field] of Object.entries(value)) {
    if (!(name in properties)) {
      if (schema.additionalProperties === false) throw new ConfigError(`config: unknown field \`${name}\``);
      continue;
    }
    const wanted = properties[name].type;
    if (typeof wanted === 'string' && TYPES[wanted] && !TYPES[wanted](field)) {
      throw new ConfigError(`config: field \`${name}\`: expected ${wanted}, got ${JSON.stringify(field)}`);
    }
  }
  return value;
}

// A record's entry in `items` (wit/connector.wit, `records`): key, value and header spans,
// the op (0: none, else OPS's index + 1) and the timestamp, little-endian, 36 bytes.
const ITEM = 36;
const ABSENT = 0xffffffff;
const NO_TIME = -(2n ** 63n);
const OPS = ['create', 'update', 'delete', 'snapshot'];

/** Packs records into one buffer: every key, value and header is a span of `data`, and
 * each record one fixed-size entry of `items`. */
export function pack(given) {
  const records = Array.from(given);
  const chunks = [];
  let offset = 0;
  const headers = [];
  const items = new Uint8Array(records.length * ITEM);
  const entries = new DataView(items.buffer);
  const span = (b) => {
    chunks.push(b);
    const s = { offset, len: b.length };
    offset += b.length;
    return s;
  };
  const none = { offset: 0, len: ABSENT };
  records.forEach((r, i) => {
    const at = i * ITEM;
    const put = (n, field) => entries.setUint32(at + 4 * n, field, true);
    const plain = !(r instanceof Record);
    const first = headers.length;
    if (!plain) {
      for (const [k, v] of r.headers) headers.push({ key: span(bytes(k)), value: span(bytes(v)) });
    }
    const key = plain || r.key === undefined ? none : span(bytes(r.key));
    const value = plain ? span(bytes(r)) : r.value === undefined ? none : span(bytes(r.value));
    [key.offset, key.len, value.offset, value.len, first, headers.length - first].forEach((n, f) =>
      put(f, n),
    );
    put(6, plain || r.op === undefined ? 0 : OPS.indexOf(r.op) + 1);
    const time = plain || r.timestampMs === undefined ? NO_TIME : BigInt(r.timestampMs);
    entries.setBigInt64(at + 28, time, true);
  });
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
  const entries = new DataView(items.buffer, items.byteOffset, items.byteLength);
  const out = [];
  for (let at = 0; at + ITEM <= items.byteLength; at += ITEM) {
    const field = (n) => entries.getUint32(at + 4 * n, true);
    const get = (offset, len) => (len === ABSENT ? undefined : data.subarray(offset, offset + len));
    const first = field(4);
    const time = entries.getBigInt64(at + 28, true);
    out.push(
      new Record({
        value: get(field(2), field(3)),
        key: get(field(0), field(1)),
        headers: headers
          .slice(first, first + field(5))
          .map((h) => [
            decoder.decode(data.subarray(h.key.offset, h.key.offset + h.key.len)),
            data.subarray(h.value.offset, h.value.offset + h.value.len),
          ]),
        timestampMs: time === NO_TIME ? undefined : Number(time),
        op: OPS[field(6) - 1],
      }),
    );
  }
  return out;
}

export const deadLetter = (d) => ({
  key: d.key === undefined ? undefined : bytes(d.key),
  value: d.value === undefined ? undefined : bytes(d.value),
  reason: String(d.reason),
});

export function batch(b) {
  if (!(b instanceof Batch)) throw new TypeError('expected a weir Batch');
  return {
    records: pack(b.records),
    deadLetters: b.deadLetters.map(deadLetter),
    checkpoint: JSON.stringify(b.checkpoint ?? null),
  };
}

export const streamInfo = (s) => ({ name: s.name, schema: s.schema === undefined ? undefined : JSON.stringify(s.schema) });


/** A transform's outputs as the contract's `transformed`: dead letters apart, the rest
 * packed. */
export function transformed(outputs) {
  const records = [];
  const rejected = [];
  for (const o of outputs ?? []) (o instanceof DeadLetter ? rejected : records).push(o);
  return { records: pack(records), deadLetters: rejected.map(deadLetter) };
}
