import { test } from 'node:test';
import assert from 'node:assert/strict';
import Source from './connector.js';

test('polls up to the limit', () => {
  const source = new Source({ per_poll: 4, limit: 6 }, null);
  assert.equal(source.poll(100, 0).records.length, 4);
  const last = source.poll(100, 0);
  assert.deepEqual([last.records.length, last.checkpoint], [2, 6]);
  assert.deepEqual(source.poll(100, 0).records, []);
});
