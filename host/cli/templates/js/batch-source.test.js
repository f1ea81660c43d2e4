import { test } from 'node:test';
import assert from 'node:assert/strict';
import Source from './connector.js';

test('resumes after the checkpoint', () => {
  const source = new Source({ count: 5 }, 2);
  const batch = source.next(10);
  assert.deepEqual(batch.records, [{ n: 2 }, { n: 3 }, { n: 4 }]);
  assert.equal(batch.checkpoint, 5);
  assert.equal(source.next(10), undefined);
});
