// {{name}}: a transform. Upper-cases the string `field` of each JSON object, drops objects
// without it, and rejects values that are not JSON objects (they go to the dead letters).
// Keys, headers and timestamps pass through: the record is returned, changed.
import { DeadLetter, Record, Transform } from '@weir/guest';

export default class Upper extends Transform {
  static spec = {
    name: '{{name}}',
    version: '0.1.0',
    description: 'Upper-cases a field of each JSON object.',
    configSchema: {
      type: 'object',
      additionalProperties: false,
      required: ['field'],
      properties: { field: { type: 'string' } },
    },
  };

  constructor(config) {
    super();
    this.field = config.field;
  }

  process(records) {
    const out = [];
    for (const r of records) {
      let value;
      try {
        value = r.json();
      } catch {
        value = undefined;
      }
      if (value === null || typeof value !== 'object' || Array.isArray(value)) {
        out.push(DeadLetter.of(r, 'not a JSON object'));
        continue;
      }
      if (typeof value[this.field] !== 'string') continue;
      value[this.field] = value[this.field].toUpperCase();
      out.push(new Record({ ...r, value: JSON.stringify(value) }));
    }
    return out;
  }
}
