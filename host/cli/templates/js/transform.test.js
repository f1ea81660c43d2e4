import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DeadLetter, Record } from '@weir/guest';
import Upper from './connector.js';

test('upper-cases, drops and rejects', () => {
  const enc = new TextEncoder();
  const out = new Upper({ field: 'name' }).process([
    new Record({ value: enc.encode('{"id":1,"name":"ada"}'), key: enc.encode('k') }),
    new Record({ value: enc.encode('{"id":2}') }),
    new Record({ value: enc.encode('"text"') }),
  ]);
  const records = out.filter((o) => o instanceof Record);
  assert.deepEqual(records.map((r) => r.value), ['{"id":1,"name":"ADA"}']);
  assert.equal(new TextDecoder().decode(records[0].key), 'k');
  assert.deepEqual(out.filter((o) => o instanceof DeadLetter).map((d) => d.reason), ['not a JSON object']);
});
