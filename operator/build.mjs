// Bundles the operator into operator/dist/: operator.js, run with `node operator.js`, and the
// webhook's thread, webhook-worker.js.
import { build } from 'esbuild';
import { readFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
rmSync(join(here, 'dist'), { recursive: true, force: true });
const common = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  // Whitespace and syntax only, names kept (stack traces in the operator's logs read as written).
  // Comments go too: one non-ASCII character in a dependency's comment made V8 keep the whole
  // 2.6 MB source as a two-byte string (5.2 MB of the operator's heap, the largest object in it).
  minifyWhitespace: true,
  minifySyntax: true,
  keepNames: true,
  sourcemap: false,
  legalComments: 'eof',
  logLevel: 'warning',
  // Only run from source (thread.ts starts its thread's TypeScript through it in tests).
  external: ['tsx/cjs'],
};
await build({ ...common, entryPoints: [join(here, 'src/main.ts')], outfile: join(here, 'dist/operator.js') });
// The webhook's thread (src/webhook/thread.ts starts it from the file beside operator.js).
await build({ ...common, entryPoints: [join(here, 'src/webhook/worker.ts')], outfile: join(here, 'dist/webhook-worker.js') });
// V8 keeps a script's source as one-byte (Latin-1) only if every character fits: one that does not
// doubles the heap the source takes for the operator's lifetime.
for (const file of ['operator.js', 'webhook-worker.js']) {
  const source = readFileSync(join(here, 'dist', file), 'utf8');
  const wide = /[^\x00-\x7f]/.exec(source);
  if (wide !== null) throw new Error(`dist/${file} is not ASCII (${JSON.stringify(source.slice(Math.max(0, wide.index - 40), wide.index + 10))}); see operator/build.mjs`);
}
console.error(`operator built in ${join(here, 'dist')}`);
