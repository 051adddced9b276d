// Bundles the shop that brings its own OpenTelemetry SDK (server-sdk.js) into
// examples/shop/dist/server-sdk.js, so its image needs no node_modules.
import { build } from 'esbuild';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
await build({
  entryPoints: [join(here, 'server-sdk.js')],
  outfile: join(here, 'dist/server-sdk.js'),
  bundle: true,
  platform: 'node',
  target: 'node18',
  format: 'cjs',
  keepNames: true,
  logLevel: 'error',
});
