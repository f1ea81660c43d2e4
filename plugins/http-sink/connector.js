// http-sink: posts each batch to a granted HTTP endpoint (a webhook, an ingest API).
//
// One request per batch: a JSON array of the values (`format = "json"`) or the values
// one per line (`"ndjson"`). A 2xx answer means the batch is delivered, so `write` is
// where delivery happens and `flush` has nothing left to do. 408, 429 and 5xx are passing
// failures the host retries; any other status rejects the batch's records to the
// dead-letter destination with the status and the start of the answer.
import { DeadLetter, Sink, TransientError, log, metrics, http } from '@weir/guest';

const encoder = new TextEncoder();

export default class HttpSink extends Sink {
  static spec = {
    name: 'http-sink',
    version: '0.1.0',
    description: 'Posts each batch to an HTTP endpoint as a JSON array or NDJSON.',
    configSchema: {
      type: 'object',
      additionalProperties: false,
      required: ['url'],
      properties: {
        url: { type: 'string', description: 'Where to POST (http:// or https://).' },
        method: { type: 'string', enum: ['POST', 'PUT'], default: 'POST' },
        format: { type: 'string', enum: ['json', 'ndjson'], default: 'json' },
        headers: { type: 'object', additionalProperties: { type: 'string' } },
        timeout_ms: { type: 'integer', minimum: 1 },
      },
    },
  };

  constructor(config) {
    super();
    this.config = { method: 'POST', format: 'json', headers: {}, ...config };
  }

  write(records) {
    const rejected = [];
    const bodies = [];
    const kept = [];
    for (const r of records) {
      if (r.value === undefined) continue; // a tombstone has nothing to post
      if (this.config.format === 'json') {
        try {
          JSON.parse(r.text());
        } catch (e) {
          rejected.push(DeadLetter.of(r, `value is not JSON: ${e.message}`));
          continue;
        }
      }
      bodies.push(r.value);
      kept.push(r);
    }
    if (kept.length === 0) return rejected;
    const { body, type } = this.encode(bodies);
    const response = http.send({
      method: this.config.method,
      url: this.config.url,
      headers: { 'content-type': type, ...this.config.headers },
      body,
      timeoutMs: this.config.timeout_ms,
    });
    const status = response.status;
    if (status >= 200 && status < 300) {
      metrics.counterAdd('requests', 1);
      return rejected;
    }
    const answer = response.text().slice(0, 200);
    if (status === 408 || status === 429 || status >= 500) {
      throw new TransientError(`${this.config.url}: HTTP ${status}: ${answer}`);
    }
    log.warn('batch rejected by the endpoint', { status, records: kept.length });
    return rejected.concat(kept.map((r) => DeadLetter.of(r, `HTTP ${status}: ${answer}`)));
  }

  encode(values) {
    const sep = encoder.encode(this.config.format === 'json' ? ',' : '\n');
    const [open, close] = this.config.format === 'json' ? ['[', ']'] : ['', '\n'];
    const size = values.reduce((n, v) => n + v.length + sep.length, 2);
    const body = new Uint8Array(size);
    let at = 0;
    const put = (b) => {
      body.set(b, at);
      at += b.length;
    };
    put(encoder.encode(open));
    values.forEach((v, i) => {
      if (i > 0) put(sep);
      put(v);
    });
    put(encoder.encode(close));
    return {
      body: body.subarray(0, at),
      type: this.config.format === 'json' ? 'application/json' : 'application/x-ndjson',
    };
  }

  flush() {}
}
