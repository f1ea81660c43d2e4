// A transform in JavaScript for the tests: appends "js" to each JSON value's `steps` and
// upper-cases its `customer`. With `{ "throw_on": S }` a value containing S throws
// (uncaught), with `{ "spin_on": S }` it loops forever: the tests' contained failures.
import { Transform, Record } from '@weir/guest';

export default class Step extends Transform {
  static spec = {
    name: 'js-step',
    description: 'Marks records as seen by JavaScript (tests only).',
    configSchema: {
      type: 'object',
      properties: { throw_on: { type: 'string' }, spin_on: { type: 'string' } },
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
      return new Record({ ...r, value: JSON.stringify(v) });
    });
  }
}
