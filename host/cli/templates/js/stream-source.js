// {{name}}: a stream source. Each poll emits up to `per_poll` records {"n": N} until
// `limit`; the checkpoint is the next N, so a restart resumes after the last commit.
import { Batch, StreamSource, log } from '@weir/guest';

export default class Source extends StreamSource {
  static spec = {
    name: '{{name}}',
    version: '0.1.0',
    description: 'Emits a counter, `per_poll` records a poll, up to `limit`.',
    configSchema: {
      type: 'object',
      additionalProperties: false,
      properties: {
        per_poll: { type: 'integer', minimum: 1, default: 10 },
        limit: { type: 'integer', minimum: 0, default: 100 },
      },
    },
  };

  constructor(config, checkpoint) {
    super();
    this.next_n = checkpoint ?? 0;
    this.perPoll = config.per_poll ?? 10;
    this.limit = config.limit ?? 100;
  }

  poll(maxRecords, _maxWaitMs) {
    const end = Math.max(this.next_n, Math.min(this.next_n + Math.min(maxRecords, this.perPoll), this.limit));
    const records = [];
    for (let n = this.next_n; n < end; n++) records.push({ n });
    this.next_n = end;
    return new Batch(records, end);
  }

  ack(checkpoint) {
    log.debug('committed', { checkpoint });
  }
}
