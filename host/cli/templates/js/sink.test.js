import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Record } from '@weir/guest';
import Webhook from './connector.js';

test('encodes JSON values as NDJSON and rejects the rest', () => {
  const enc = new TextEncoder();
  const { body, rejected } = Webhook.encode([
    new Record({ value: enc.encode('{"a": 1}') }),
    new Record({ value: enc.encode('oops') }),
  ]);
  assert.equal(body, '{"a":1}\n');
  assert.equal(rejected.length, 1);
  assert.match(rejected[0].reason, /not JSON/);
});
