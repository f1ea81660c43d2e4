// The JavaScript SDK's glue under plain Node.js (`node --test guest-sdk/js/test`): what a
// connector hands the host and what it gets back, without a component around it.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Batch, ConfigError, DeadLetter, FatalError, Record, TransientError } from '../index.js';
import { batch, config, deadLetter, guarded, pack, position, transformed, unpack } from '../glue.js';

const text = (b) => new TextDecoder().decode(b);

test('records survive packing and unpacking, every field', () => {
  const records = [
    new Record({ key: 'k1', value: '{"n":1}', headers: [['h', 'v']], timestampMs: 1700000000000, op: 'update' }),
    new Record({ key: 'k2' }), // a tombstone
    { n: 3 }, // any JSON value is a record's value
    'plain text',
  ];
  const packed = pack(records);
  assert.ok(packed.data instanceof Uint8Array);
  const back = unpack(packed);
  assert.equal(back.length, 4);
  assert.equal(text(back[0].key), 'k1');
  assert.deepEqual(back[0].json(), { n: 1 });
  assert.deepEqual(back[0].headers.map(([k, v]) => [k, text(v)]), [['h', 'v']]);
  assert.equal(back[0].timestampMs, 1700000000000);
  assert.equal(back[0].op, 'update');
  assert.equal(text(back[1].key), 'k2');
  assert.equal(back[1].value, undefined, 'a tombstone stays one');
  assert.deepEqual(back[2].json(), { n: 3 });
  assert.equal(back[3].text(), 'plain text');
  assert.equal(back[3].key, undefined);
});

test('every span lies inside the one buffer', () => {
  const packed = pack([new Record({ key: 'a', value: 'bc', headers: [['d', 'ef']] }), 'ghi']);
  const entries = new DataView(packed.items.buffer);
  const spans = [];
  for (let at = 0; at < packed.items.length; at += 36) {
    for (const f of [0, 8]) {
      const s = { offset: entries.getUint32(at + f, true), len: entries.getUint32(at + f + 4, true) };
      if (s.len !== 0xffffffff) spans.push(s);
    }
  }
  spans.push(...packed.headers.flatMap((h) => [h.key, h.value]));
  for (const s of spans) assert.ok(s.offset + s.len <= packed.data.length, JSON.stringify(s));
  const at = (s) => text(packed.data.subarray(s.offset, s.offset + s.len));
  assert.deepEqual(spans.map(at), ['a', 'bc', 'ghi', 'd', 'ef']);
  assert.equal(packed.data.length, 9, 'nothing else in the buffer');
});

test('entries have the bytes the contract documents', () => {
  // The layout wit/wire documents and tests, field by field.
  const packed = pack([new Record({ key: '?', timestampMs: -5, op: 'delete' }), '']);
  const hex = Buffer.from(packed.items).toString('hex');
  assert.equal(
    hex,
    '0000000001000000' + '00000000ffffffff' + '0000000000000000' + '03000000' + 'fbffffffffffffff' +
      '00000000ffffffff' + '0100000000000000' + '0000000000000000' + '00000000' + '0000000000000080',
  );
});

test('throws become the contract typed errors', () => {
  const thrown = (e) => {
    try {
      guarded(() => {
        throw e;
      });
    } catch (err) {
      return err;
    }
    assert.fail('nothing thrown');
  };
  assert.deepEqual(thrown(new ConfigError('bad dir')), { tag: 'config', val: 'bad dir' });
  assert.deepEqual(thrown(new TransientError('busy')), { tag: 'transient', val: 'busy' });
  const fatal = thrown(new FatalError('broken'));
  assert.equal(fatal.tag, 'fatal');
  assert.match(fatal.val, /^Error: broken/);
  const bug = thrown(new TypeError('x is undefined'));
  assert.equal(bug.tag, 'fatal');
  assert.match(bug.val, /TypeError: x is undefined\n.*glue\.test\.js/s, 'with the stack');
  assert.equal(guarded(() => 42), 42);
});

test('checkpoints travel as JSON', () => {
  const b = batch(new Batch(['r'], { file: 'a.jsonl', offset: 7 }, [DeadLetter.of(new Record({ value: 'x' }), 'no')]));
  assert.equal(b.checkpoint, '{"file":"a.jsonl","offset":7}');
  assert.deepEqual(position(b.checkpoint), { file: 'a.jsonl', offset: 7 });
  assert.equal(position(undefined), null, 'no checkpoint yet');
  assert.equal(batch(new Batch([])).checkpoint, 'null');
  assert.equal(text(b.deadLetters[0].value), 'x');
  assert.equal(b.deadLetters[0].reason, 'no');
  assert.equal(deadLetter({ reason: 7 }).reason, '7');
  assert.throws(() => batch({ records: [] }), TypeError, 'only a weir Batch');
});

test('a transform maps, expands and rejects, keeping what it returns', () => {
  const given = unpack(
    pack([
      new Record({ key: 'k', value: '{"parts":[1,2]}', headers: [['h', 'v']], timestampMs: 5, op: 'create' }),
      { bad: 1 },
    ]),
  );
  const outputs = [];
  for (const r of given) {
    const v = r.json();
    if (v.bad) {
      outputs.push(DeadLetter.of(r, 'bad'));
      continue;
    }
    for (const part of v.parts) outputs.push(new Record({ ...r, value: JSON.stringify(part) }));
  }
  const out = transformed(outputs);
  const back = unpack(out.records);
  assert.deepEqual(back.map((r) => r.text()), ['1', '2']);
  assert.equal(text(back[1].key), 'k');
  assert.deepEqual(back[1].headers.map(([k, v]) => [k, text(v)]), [['h', 'v']]);
  assert.equal(back[1].timestampMs, 5);
  assert.equal(back[1].op, 'create');
  assert.equal(out.deadLetters.length, 1);
  assert.equal(out.deadLetters[0].reason, 'bad');
  assert.equal(text(out.deadLetters[0].value), '{"bad":1}');
  assert.equal(transformed(undefined).records.items.length, 0, 'nothing returned passes nothing on');
});

test('a config breaking the top of the schema is a config error naming the field', () => {
  const schema = {
    type: 'object',
    required: ['url'],
    additionalProperties: false,
    properties: { url: { type: 'string' }, size: { type: 'integer' }, on: { type: 'boolean' } },
  };
  assert.deepEqual(config('{"url": "u", "size": 3, "on": true}', schema), { url: 'u', size: 3, on: true });
  for (const [text, said] of [
    ['{}', 'missing field `url`'],
    ['{"url": "u", "extra": 1}', 'unknown field `extra`'],
    ['{"url": 5}', 'field `url`: expected string'],
    ['{"url": "u", "size": 1.5}', 'field `size`: expected integer'],
    ['{"url": "u", "on": 1}', 'field `on`: expected boolean'],
    ['[1]', 'expected a JSON object'],
  ]) {
    assert.throws(() => config(text, schema), (e) => e instanceof ConfigError && e.message.includes(said), text);
  }
});

test('a checkpoint that is not JSON is a config error', () => {
  assert.deepEqual(position('{"offset": 3}'), { offset: 3 });
  assert.equal(position(undefined), null);
  assert.throws(() => position('not json'), (e) => e instanceof ConfigError && e.message.includes('cannot read the checkpoint'));
});
