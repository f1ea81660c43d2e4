// The benchmark's transform, in JavaScript: parse each value, upper-case `name`, mark it
// `seen`, re-serialise. The output is counted (`bytes_out`), not stored, so the benchmark
// measures the language rather than a disk. A value that is not JSON throws, uncaught,
// which the tests use to check that stacks reach the host.
import { Sink, metrics } from '@weir/guest';

export default class Transform extends Sink {
  static spec = { name: 'js-transform', description: 'The benchmark transform (tests only).' };

  write(records) {
    let size = 0;
    for (const r of records) {
      const obj = r.json();
      if (typeof obj.name === 'string') obj.name = obj.name.toUpperCase();
      obj.seen = true;
      size += JSON.stringify(obj).length + 1;
    }
    metrics.counterAdd('bytes_out', size);
  }

  flush() {}
}
