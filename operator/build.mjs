// Bundles the operator into operator/dist/: operator.js, run with `node operator.js`, and the
// webhook's thread, webhook-worker.js.
import { build } from 'esbuild';
import { rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
rmSync(join(here, 'dist'), { recursive: true, force: true });
const common = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  minify: false,
  sourcemap: false,
  legalComments: 'eof',
  logLevel: 'warning',
  // Only run from source (thread.ts starts its thread's TypeScript through it in tests).
  external: ['tsx/cjs'],
};
await build({ ...common, entryPoints: [join(here, 'src/main.ts')], outfile: join(here, 'dist/operator.js') });
// The webhook's thread (src/webhook/thread.ts starts it from the file beside operator.js).
await build({ ...common, entryPoints: [join(here, 'src/webhook/worker.ts')], outfile: join(here, 'dist/webhook-worker.js') });
console.error(`operator built in ${join(here, 'dist')}`);
