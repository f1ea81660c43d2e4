// {{name}}: a sink. Posts each batch's values, one per line (NDJSON), to `url`, which the
// pipeline must grant (`grants.http.hosts`). A 2xx answer means the batch is delivered;
// 429 and 5xx are passing failures the host retries; values that are not JSON go to the
// dead letters.
import { DeadLetter, Sink, TransientError, FatalError, http } from '@weir/guest';

export default class Webhook extends Sink {
  static spec = {
    name: '{{name}}',
    version: '0.1.0',
    description: 'Posts each batch as NDJSON to an HTTP endpoint.',
    configSchema: {
      type: 'object',
      additionalProperties: false,
      required: ['url'],
      properties: { url: { type: 'string' } },
    },
  };

  constructor(config) {
    super();
    this.url = config.url;
  }

  /** The lines to post, and the records that are not JSON. */
  static encode(records) {
    const lines = [];
    const rejected = [];
    for (const r of records) {
      try {
        lines.push(JSON.stringify(r.json()));
      } catch (e) {
        rejected.push(DeadLetter.of(r, `not JSON: ${e.message}`));
      }
    }
    return { body: lines.map((l) => l + '\n').join(''), rejected };
  }

  write(records) {
    const { body, rejected } = Webhook.encode(records);
    if (body === '') return rejected;
    const r = http.post(this.url, body, { headers: { 'content-type': 'application/x-ndjson' } });
    if (r.status === 429 || r.status >= 500) throw new TransientError(`HTTP ${r.status}`);
    if (r.status >= 300) throw new FatalError(`HTTP ${r.status}: ${r.text().slice(0, 200)}`);
    return rejected;
  }

  flush() {}
}
