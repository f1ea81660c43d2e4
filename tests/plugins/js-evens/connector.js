// The transform benchmark's step in JavaScript: `select(.n % 2 == 0) | .name |=
// ascii_upcase`, as jq would, keeping each record's key and headers.
import { Transform } from '@weir/guest';

export default class Evens extends Transform {
  static spec = { name: 'js-evens', description: 'Keeps even `n`, upper-cases `name` (the transform benchmark).' };

  process(records) {
    const out = [];
    for (const r of records) {
      const v = r.json();
      if (v.n % 2) continue;
      v.name = v.name.toUpperCase();
      r.value = JSON.stringify(v);
      out.push(r);
    }
    return out;
  }
}
