// A transform in JavaScript for the tests: appends "js" to each JSON value's `steps` and
// upper-cases its `customer`. With `{ "throw_on": S }` a value containing S throws
// (uncaught), with `{ "spin_on": S }` it loops forever: the tests' contained failures.
// With `{ "hash": { "key": K, "field": F } }` it replaces field F by its HMAC under the
// granted key K, computed by the host (`keys`).
import { Transform, Record, keys } from '@weir/guest';

export default class Step extends Transform {
  static spec = {
    name: 'js-step',
    description: 'Marks records as seen by JavaScript (tests only).',
    configSchema: {
      type: 'object',
      properties: {
        throw_on: { type: 'string' },
        spin_on: { type: 'string' },
        hash: {
          type: 'object',
          properties: { key: { type: 'string' }, field: { type: 'string' } },
          required: ['key', 'field'],
        },
      },
      additionalProperties: false,
    },
  };

  constructor(config) {
    super();
    this.config = config;
  }

  process(records) {
    return records.map((r) => {
      const text = r.text();
      if (this.config.throw_on && text.includes(this.config.throw_on)) throw new Error(`told to throw on ${text}`);
      if (this.config.spin_on && text.includes(this.config.spin_on)) for (;;);
      const v = JSON.parse(text);
      v.steps = [...(v.steps ?? []), 'js'];
      if (typeof v.customer === 'string') v.customer = v.customer.toUpperCase();
      const hash = this.config.hash;
      if (hash && hash.field in v) {
        const [digest] = keys.hmacSha256(hash.key, [String(v[hash.field])]);
        v[hash.field] = Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('');
      }
      return new Record({ ...r, value: JSON.stringify(v) });
    });
  }
}
