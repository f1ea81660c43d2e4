// weir's sql, objects and kafka over a stand-in for the component glue (`host.impl`): what
// they hand the host, and what they make of its answers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Record, host, kafka, objects, sql } from '../index.js';
import { pack, unpack } from '../glue.js';

const encoder = new TextEncoder();

test('sql parameters are typed, and rows are fetched to the end', () => {
  const calls = [];
  const rows = [{ id: 1, doc: { a: 1 } }, { id: 2, doc: null }, { id: 3, doc: [1] }];
  let left = [];
  host.impl = {
    sql: {
      open: () => 'conn',
      execute: (c, statement, params) => {
        calls.push([c, statement, params]);
        return 1n;
      },
      // As the bindings hand a list<u64> over: a BigUint64Array.
      transaction: (c, statements) => BigUint64Array.from(statements, () => 1n),
      query: () => {
        left = [...rows];
      },
      fetch: (c, max) => unpack(pack(left.splice(0, max))),
    },
  };
  try {
    const db = sql.connect();
    assert.equal(db.execute('INSERT', null, true, 3, 1.5, 'text', encoder.encode('b'), { a: 1 }, 7n), 1);
    assert.deepEqual(calls[0][2], [
      { tag: 'null' },
      { tag: 'boolean', val: true },
      { tag: 'int', val: 3n },
      { tag: 'float', val: 1.5 },
      { tag: 'text', val: 'text' },
      { tag: 'bytes', val: encoder.encode('b') },
      { tag: 'json', val: '{"a":1}' },
      { tag: 'int', val: 7n },
    ]);
    assert.deepEqual([...db.rows('SELECT', [], 2)], rows);
    assert.deepEqual(db.transaction([['INSERT 1'], ['INSERT 2', [5]]]), [1, 1]);
  } finally {
    host.impl = undefined;
  }
});

test('objects are listed by page and read in pieces', () => {
  const store = new Map(Array.from({ length: 5 }, (_, i) => [`k${i}`, new Uint8Array(i * 3).fill(i)]));
  host.impl = {
    objects: {
      list: (prefix, after, max) =>
        [...store.keys()]
          .filter((k) => k.startsWith(prefix) && (after === undefined || k > after))
          .sort()
          .slice(0, max)
          .map((key) => ({ key, size: BigInt(store.get(key).length), etag: undefined, lastModifiedMs: 0n })),
      read: (key, offset, len) => store.get(key).subarray(Number(offset), Number(offset) + len),
      write: (key, data) => store.set(key, data),
    },
  };
  try {
    assert.deepEqual([...objects.walk('k', 2)].map((o) => o.key), ['k0', 'k1', 'k2', 'k3', 'k4']);
    assert.deepEqual(objects.readAll('k4', 5), store.get('k4'));
    objects.write('new', 'text');
    assert.deepEqual(store.get('new'), encoder.encode('text'));
  } finally {
    host.impl = undefined;
  }
});

test('kafka pairs records with their origins and sends packed records', () => {
  const sent = [];
  const committed = [];
  host.impl = {
    kafka: {
      consumer: () => 'consumer',
      poll: () => ({
        records: unpack(pack([{ n: 1 }, { n: 2 }])),
        origins: [
          { topic: 1, partition: 0, offset: 41n },
          { topic: 0, partition: 2, offset: 7n },
        ],
        topics: ['a', 'b'],
      }),
      commit: (c, positions) => committed.push(...positions),
      producer: () => 'producer',
      send: (p, topic, records) => sent.push([topic, unpack(pack(records)).map((r) => new TextDecoder().decode(r.value))]),
    },
  };
  try {
    const consumer = kafka.consumer(['a', 'b']);
    const polled = consumer.poll(10, 100);
    assert.deepEqual(
      polled.map(([r, o]) => [JSON.parse(new TextDecoder().decode(r.value)), o.topic, o.offset]),
      [
        [{ n: 1 }, 'b', 41],
        [{ n: 2 }, 'a', 7],
      ],
    );
    consumer.commit([{ ...polled[0][1], offset: polled[0][1].offset + 1 }]);
    assert.deepEqual(committed, [{ topic: 'b', partition: 0, offset: 42n }]);
    kafka.producer().send('out', [{ n: 3 }, new Record({ value: 'v', key: 'k' })]);
    assert.deepEqual(sent, [['out', ['{"n":3}', 'v']]]);
  } finally {
    host.impl = undefined;
  }
});
