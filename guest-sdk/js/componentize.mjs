#!/usr/bin/env node
// Builds a JavaScript connector into a component:
//   componentize.mjs WORLD CONNECTOR.js OUT.wasm
// WORLD is batch-source, stream-source, sink or transform; CONNECTOR.js default-exports
// the class.
// The connector and its imports are bundled (esbuild) with the SDK's glue, then
// componentize-js embeds them in SpiderMonkey. Rebuilds only when a source is newer.
import { componentize } from '@bytecodealliance/componentize-js';
import { build } from 'esbuild';
import { mkdtemp, mkdir, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const [world, source, out] = process.argv.slice(2);
const names = {
  'batch-source': 'batchRead',
  'stream-source': 'streamRead',
  sink: 'sinkWrite',
  transform: 'transformRecords',
};
if (!names[world] || !source || !out) {
  console.error('usage: componentize.mjs batch-source|stream-source|sink|transform CONNECTOR.js OUT.wasm');
  process.exit(2);
}
const sdk = dirname(fileURLToPath(import.meta.url));
const wit = process.env.WEIR_WIT ?? resolve(sdk, '../../wit');

async function newest(path) {
  const s = await stat(path);
  if (!s.isDirectory()) return s.mtimeMs;
  let t = 0;
  for (const e of await readdir(path)) {
    if (e === 'node_modules' || e.endsWith('.wasm')) continue;
    t = Math.max(t, await newest(join(path, e)));
  }
  return t;
}

const built = await stat(out).then((s) => s.mtimeMs, () => 0);
const inputs = [dirname(resolve(source)), join(sdk, 'index.js'), join(sdk, 'component.js'), join(sdk, 'glue.js'), wit];
if (built && (await Promise.all(inputs.map(newest))).every((t) => t < built)) process.exit(0);

const work = await mkdtemp(join(tmpdir(), 'weir-js-'));
try {
  const entry = join(work, 'entry.js');
  await writeFile(
    entry,
    `import Connector from ${JSON.stringify(resolve(source))};\n` +
      `import { exportsFor } from ${JSON.stringify(join(sdk, 'component.js'))};\n` +
      `export const { connector, ${names[world]} } = exportsFor(${JSON.stringify(world)}, Connector);\n`,
  );
  const bundle = join(work, 'bundle.js');
  await build({
    entryPoints: [entry],
    bundle: true,
    format: 'esm',
    platform: 'neutral',
    outfile: bundle,
    external: ['weir:*', 'wasi:*'],
    // The SDK is imported as `@weir/guest` by connectors outside this repository.
    alias: { '@weir/guest': join(sdk, 'index.js') },
    logLevel: 'error',
  });
  const { component } = await componentize({
    sourcePath: bundle,
    witPath: wit,
    worldName: world,
    // Outgoing HTTP goes through weir:connector/http, under the pipeline's grant; the
    // engine's own fetch would need wasi:http, which the host does not provide.
    disableFeatures: ['http', 'fetch-event'],
  });
  await mkdir(dirname(resolve(out)), { recursive: true });
  await writeFile(out, component);
} finally {
  await rm(work, { recursive: true, force: true });
}
