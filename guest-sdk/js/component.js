// Between the component bindings and a connector class: JSON in and out, packed records in
// and out, throws to typed errors. Bundled into the component by componentize.mjs; never
// imported under plain Node.js.

import { log as witLog } from 'weir:connector/log@0.1.0';
import { counterAdd, gaugeSet } from 'weir:connector/metrics@0.1.0';
import { send } from 'weir:connector/http@0.1.0';
import { hmacSha256 } from 'weir:connector/keys@0.1.0';
import { ConfigError, TransientError, FatalError, host } from './index.js';
import { batch, config as checkedConfig, deadLetter, guarded, position, streamInfo, transformed, unpack } from './glue.js';

/** Calls a host import, turning its typed error into the SDK's error classes. */
function typed(call) {
  try {
    return call();
  } catch (e) {
    // The host's typed error arrives as the thrown value's payload.
    const err = e?.payload ?? e;
    const message = err?.val ?? String(e);
    if (err?.tag === 'config') throw new ConfigError(message);
    if (err?.tag === 'transient') throw new TransientError(message);
    throw new FatalError(message);
  }
}

host.impl = {
  log: witLog,
  counterAdd,
  gaugeSet,
  send: (request) => typed(() => send(request)),
  hmacSha256: (name, messages) => typed(() => hmacSha256(name, messages)),
};

/** The component's exports for `Connector`, named as the world `world` expects them. */
export function exportsFor(world, Connector) {
  const parsed = (text) => checkedConfig(text, Connector.spec.configSchema);
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
      guarded(() => Connector.check(parsed(config)));
    },
  };
  const discover = (config) => guarded(() => Connector.discover(parsed(config)).map(streamInfo));
  switch (world) {
    case 'batch-source': {
      class Reader {
        constructor(inner) {
          this.inner = inner;
        }
        static open(config, checkpoint) {
          return new Reader(guarded(() => new Connector(parsed(config), position(checkpoint))));
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
          return new Stream(guarded(() => new Connector(parsed(config), position(checkpoint))));
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
          return new Writer(guarded(() => new Connector(parsed(config))));
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
    case 'transform': {
      class Transformer {
        constructor(inner) {
          this.inner = inner;
        }
        static open(config) {
          return new Transformer(guarded(() => new Connector(parsed(config))));
        }
        process(records) {
          return guarded(() => transformed(this.inner.process(unpack(records))));
        }
      }
      return { connector, transformRecords: { Transformer } };
    }
    default:
      throw new Error(`unknown world ${world}`);
  }
}
