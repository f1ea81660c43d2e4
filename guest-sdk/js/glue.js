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

export const position = (text) => (text === undefined ? null : JSON.parse(text));

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
    checkpoint: JSON.stringify(b.cursor ?? null),
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
