// Between the component bindings and a connector class: JSON in and out, packed records in
// and out, throws to typed errors. Bundled into the component by componentize.mjs; never
// imported under plain Node.js.

import { log as witLog } from 'weir:connector/log@0.1.0';
import { counterAdd } from 'weir:connector/metrics@0.1.0';
import { send } from 'weir:connector/http@0.1.0';
import { ConfigError, TransientError, FatalError, host } from './index.js';
import { batch, deadLetter, guarded, position, streamInfo, unpack } from './glue.js';

host.impl = {
  log: witLog,
  counterAdd,
  send(request) {
    try {
      return send(request);
    } catch (e) {
      // The host's typed error arrives as the thrown value's payload.
      const err = e?.payload ?? e;
      const message = err?.val ?? String(e);
      if (err?.tag === 'config') throw new ConfigError(message);
      if (err?.tag === 'transient') throw new TransientError(message);
      throw new FatalError(message);
    }
  },
};

/** The component's exports for `Connector`, named as the world `world` expects them. */
export function exportsFor(world, Connector) {
  const connector = {
    spec() {
      const s = Connector.spec;
      return {
        name: s.name,
        version: s.version ?? '0.1.0',
        description: s.description ?? '',
        configSchema: JSON.stringify(s.configSchema ?? { type: 'object' }),
      };
    },
    check(config) {
      guarded(() => Connector.check(JSON.parse(config)));
    },
  };
  const discover = (config) => guarded(() => Connector.discover(JSON.parse(config)).map(streamInfo));
  switch (world) {
    case 'batch-source': {
      class Reader {
        constructor(inner) {
          this.inner = inner;
        }
        static open(config, cursor) {
          return new Reader(guarded(() => new Connector(JSON.parse(config), position(cursor))));
        }
        next(max) {
          return guarded(() => {
            const b = this.inner.next(max);
            return b === undefined || b === null ? undefined : batch(b);
          });
        }
      }
      return { connector, batchRead: { discover, Reader } };
    }
    case 'stream-source': {
      class Stream {
        constructor(inner) {
          this.inner = inner;
        }
        static open(config, checkpoint) {
          return new Stream(guarded(() => new Connector(JSON.parse(config), position(checkpoint))));
        }
        poll(max, waitMs) {
          return guarded(() => batch(this.inner.poll(max, waitMs)));
        }
        ack(checkpoint) {
          guarded(() => this.inner.ack(JSON.parse(checkpoint)));
        }
      }
      return { connector, streamRead: { discover, Stream } };
    }
    case 'sink': {
      class Writer {
        constructor(inner) {
          this.inner = inner;
        }
        static open(config) {
          return new Writer(guarded(() => new Connector(JSON.parse(config))));
        }
        write(records) {
          return guarded(() => (this.inner.write(unpack(records)) ?? []).map(deadLetter));
        }
        flush() {
          guarded(() => this.inner.flush());
        }
      }
      return { connector, sinkWrite: { Writer } };
    }
    default:
      throw new Error(`unknown world ${world}`);
  }
}
