// {{name}}: a batch source. Each run emits the numbers after the last committed checkpoint,
// up to `count`, as {"n": N}; the host commits the checkpoint after the sink flushed.
import { Batch, BatchSource } from '@weir/guest';

export default class Source extends BatchSource {
  static spec = {
    name: '{{name}}',
    version: '0.1.0',
    description: 'Counts to `count`, resuming where the last run ended.',
    configSchema: {
      type: 'object',
      additionalProperties: false,
      required: ['count'],
      properties: { count: { type: 'integer', minimum: 0 } },
    },
  };

  constructor(config, checkpoint) {
    super();
    this.next_n = checkpoint ?? 0;
    this.end = config.count;
  }

  next(maxRecords) {
    if (this.next_n >= this.end) return undefined;
    const end = Math.min(this.next_n + maxRecords, this.end);
    const records = [];
    for (let n = this.next_n; n < end; n++) records.push({ n });
    this.next_n = end;
    return new Batch(records, end);
  }
}
