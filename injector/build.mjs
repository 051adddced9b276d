// Builds the self-contained agent directory, injector/dist/:
//   register.js                 the preload entry: loads agent.js once, in the main thread
//   agent.js                    the agent (OpenTelemetry SDK and instrumentations bundled in)
//   pprof/out/src/index.js      the native profiler's JavaScript, bundled
//   pprof/prebuilds/linux-*/    its prebuilt addons for linux x64/arm64, glibc and musl
//   node_modules/               import-in-the-middle and its dependencies, for ES module apps
// Nothing in it is loaded from the app's node_modules.
import { build } from 'esbuild';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createRequire } from 'node:module';
import { withLeanHelpers } from './lean-helpers.mjs';
import { runWithoutContextExport, serializeSpanExport } from './added-exports.mjs';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, 'dist');
const require = createRequire(import.meta.url);
const PPROF_BUNDLE = './pprof/out/src/index.js';
const PLATFORMS = ['linux-x64', 'linux-arm64'];

rmSync(dist, { recursive: true, force: true });
mkdirSync(dist, { recursive: true });

const common = {
  bundle: true,
  platform: 'node',
  target: 'node18',
  format: 'cjs',
  // Whitespace and syntax only: function names stay as written, because the
  // agent's own frames (context propagation around every request) show up in
  // users' flame graphs and must read as what they are.
  minifyWhitespace: process.env.AGENT_MINIFY !== 'false',
  minifySyntax: process.env.AGENT_MINIFY !== 'false',
  keepNames: true,
  sourcemap: false,
  legalComments: 'eof',
  logLevel: 'warning',
};

// The instrumentations' wrapping helper, replaced by one whose wrappers can be made inert
// (the agent's instrumentations stand down when the app brings its own OpenTelemetry SDK).
const gatedShimmer = {
  name: 'gated-shimmer',
  setup(b) {
    b.onResolve({ filter: /^\.\/shimmer$/ }, (args) =>
      /[\\/]@opentelemetry[\\/]instrumentation[\\/]/.test(args.importer) ? { path: join(here, 'src/tracing/gated-shimmer.ts') } : undefined,
    );
  },
};

// The OTLP exporters' transports, bounded so that a trace backend that is down never delays exit
// (src/export/bounded-retry.ts, src/export/bounded-grpc.ts).
const boundedExports = {
  name: 'bounded-exports',
  setup(b) {
    b.onResolve({ filter: /^\.\/retrying-transport$/ }, (args) =>
      /[\\/]@opentelemetry[\\/]otlp-exporter-base[\\/]/.test(args.importer) ? { path: join(here, 'src/export/bounded-retry.ts') } : undefined,
    );
    b.onResolve({ filter: /^\.\/grpc-exporter-transport$/ }, (args) =>
      /[\\/]@opentelemetry[\\/]otlp-grpc-exporter-base[\\/]build[\\/]src[\\/]otlp-grpc-export-delegate\.js$/.test(args.importer) ? { path: join(here, 'src/export/bounded-grpc.ts') } : undefined,
    );
  },
};

// The OpenTelemetry API's context values, replaced by the agent's (src/tracing/otel-context.ts: the API's
// allocated three old-generation closures per context, which kept every request's span alive
// through young-generation collections).
const otelContext = {
  name: 'otel-context',
  setup(b) {
    b.onResolve({ filter: /^\.\.?\/(context\/)?context$/ }, (args) => {
      const target = join(args.resolveDir, `${args.path}.js`);
      return /[\\/]@opentelemetry[\\/]api[\\/]build[\\/][^\\/]+[\\/]context[\\/]context\.js$/.test(target) ? { path: join(here, 'src/tracing/otel-context.ts') } : undefined;
    });
  },
};

// pprof-format's string table, replaced by one that does not keep every profile's strings alive
// through young-generation collections (src/profiling/string-table.ts). Every bundle with a copy
// of pprof-format gets it: the native profiler's serializer builds its profiles with that copy.
const lazyStringTable = {
  name: 'lazy-string-table',
  setup(b) {
    b.onLoad({ filter: /[\\/]pprof-format[\\/]dist[\\/](commonjs|esm)[\\/]index\.js$/ }, (args) => {
      const source = readFileSync(args.path, 'utf8');
      const esm = /[\\/]esm[\\/]/.test(args.path);
      if (!/^(export )?class StringTable \{$/m.test(source) || !source.includes('emptyTableToken')) {
        throw new Error(`pprof-format changed: no StringTable class in ${args.path} (see src/profiling/string-table.ts)`);
      }
      const replacement = JSON.stringify(join(here, 'src/profiling/string-table.ts'));
      const tail = esm
        ? `\nimport { lazyStringTable as __lazyStringTable } from ${replacement};\nStringTable = __lazyStringTable(StringTable, emptyTableToken);\n`
        : `\nStringTable = require(${replacement}).lazyStringTable(StringTable, exports.emptyTableToken);\nexports.StringTable = StringTable;\n`;
      return { contents: source + tail, loader: 'js', resolveDir: dirname(args.path) };
    });
  },
};

// @opentelemetry/otlp-transformer's index, with each export's module loaded when the export is first
// read: the index loads the metrics and logs serializers, and with them the metrics SDK (60 modules of
// heap for a process that exports only traces). Which module gives which export is read from the
// package itself, each checked to be the index's own value.
const lazyOtlpTransformer = {
  name: 'lazy-otlp-transformer',
  setup(b) {
    const pkg = '@opentelemetry/otlp-transformer';
    b.onResolve({ filter: /^@opentelemetry\/otlp-transformer$/ }, () => ({ path: pkg, namespace: 'lazy-index' }));
    b.onLoad({ filter: /.*/, namespace: 'lazy-index' }, () => {
      const index = require(pkg);
      const root = join(dirname(require.resolve(`${pkg}/package.json`)), 'build/src');
      const parts = ['trace/protobuf', 'trace/json', 'trace', 'metrics/protobuf', 'metrics/json', 'metrics', 'logs/protobuf', 'logs/json', 'logs'];
      const lines = ['"use strict";'];
      for (const name of Object.keys(index)) {
        const part = parts.find((p) => require(join(root, p))[name] === index[name]);
        if (part === undefined) throw new Error(`${pkg}: no module of ${parts.join(', ')} gives ${name}; see lazyOtlpTransformer in injector/build.mjs`);
        lines.push(`Object.defineProperty(exports, ${JSON.stringify(name)}, { enumerable: true, get: () => require(${JSON.stringify(join(root, part))}).${name} });`);
      }
      return { contents: lines.join('\n'), loader: 'js', resolveDir: root };
    });
  },
};

// @opentelemetry/semantic-conventions, with only the constants the bundle reads. Its index defines
// every constant of the conventions (hundreds, and the deprecated ones), each a property and a
// string on the heap of every process, where the agent's code reads a few dozen. A first build, with
// the package left out, finds them: each place that requires it must keep it in a variable and only
// read its constants by name (anything else, and the build stops here).
async function semanticConventionsUsed(options) {
  const pkg = '@opentelemetry/semantic-conventions';
  const fail = (why) => {
    throw new Error(`${pkg}: ${why}; see semanticConventionsUsed in injector/build.mjs`);
  };
  const probe = await build({
    ...options,
    write: false,
    plugins: [{ name: 'semconv-probe', setup: (b) => b.onResolve({ filter: /^@opentelemetry\/semantic-conventions(\/.*)?$/ }, (args) => ({ path: args.path, external: true })) }, ...options.plugins],
  });
  const text = probe.outputFiles[0].text;
  const required = text.split(`require("${pkg}`).length - 1;
  const aliases = [...text.matchAll(/([\w$]+)=(?:__toESM\()?require\("@opentelemetry\/semantic-conventions"\)/g)].map((m) => m[1]);
  if (aliases.length !== required) fail(`required ${required} times, ${aliases.length} of them the index kept in a variable`);
  const exported = require(pkg);
  const names = new Set();
  for (const alias of aliases) {
    const uses = text.matchAll(new RegExp(`(?<![\\w$.])${alias.replace(/\$/g, '\\$')}(?![\\w$])(?:\\.([\\w$]+)|(=))?`, 'g'));
    for (const [use, name, assigned] of uses) {
      if (assigned !== undefined) continue;
      if (name === undefined || !Object.hasOwn(exported, name)) fail(`\`${use}\` reads something other than a constant`);
      if (typeof exported[name] !== 'string' && typeof exported[name] !== 'number') fail(`${name} is not a string or a number`);
      names.add(name);
    }
  }
  const contents = ['"use strict";', ...[...names].sort().map((name) => `exports.${name} = ${JSON.stringify(exported[name])};`)].join('\n');
  return {
    name: 'semantic-conventions-used',
    setup(b) {
      b.onResolve({ filter: /^@opentelemetry\/semantic-conventions$/ }, () => ({ path: pkg, namespace: 'semconv-used' }));
      b.onLoad({ filter: /.*/, namespace: 'semconv-used' }, () => ({ contents, loader: 'js' }));
    },
  };
}

// The packages each instrumentation hooks, for instantiating it when one of them is first required
// (src/tracing/lazy-instrumentations.ts). Read from the instrumentations themselves, so the table cannot drift.
function instrumentedPackages() {
  const source = readFileSync(join(here, 'src/tracing/instrumentations.ts'), 'utf8');
  // The agent's own (fastify's routes) hook no package: only OpenTelemetry's are read here.
  const keys = [...source.matchAll(/^  '([a-z0-9.-]+)': \(\) => .*require\('@opentelemetry\/instrumentation-/gm)].map((m) => m[1]);
  const table = {};
  for (const key of keys) {
    const exported = require(`@opentelemetry/instrumentation-${key}`);
    const Instrumentation = Object.values(exported).find((v) => typeof v === 'function' && /Instrumentation$/.test(v.name));
    const names = [...new Set(new Instrumentation({ enabled: false }).getModuleDefinitions().map((d) => d.name))];
    // Diagnostics-channel ones (undici, which hooks no module) are set up at start.
    if (names.length > 0) table[key] = names;
  }
  if (Object.keys(table).length < 20) throw new Error(`instrumentedPackages: only ${Object.keys(table).length} instrumentations found in src/tracing/instrumentations.ts`);
  return table;
}

// The preload entry: a few lines that load agent.js only where it should run.
await build({
  ...common,
  entryPoints: [join(here, 'src/register.ts')],
  outfile: join(dist, 'register.js'),
});

// The agent, with the profiler and import-in-the-middle left as runtime requires of files beside it.
const agentOptions = {
  ...common,
  entryPoints: [join(here, 'src/main.ts')],
  outfile: join(dist, 'agent.js'),
  // import() becomes require(): agent.js is compiled with vm.Script for its code cache (src/lifecycle/code-cache.ts).
  supported: { 'dynamic-import': false },
  define: { __INSTRUMENTED_PACKAGES__: JSON.stringify(instrumentedPackages()) },
  plugins: [
    {
      name: 'pprof-external',
      setup(b) {
        b.onResolve({ filter: /^@datadog\/pprof(\/.*)?$/ }, () => ({ path: PPROF_BUNDLE, external: true }));
        b.onResolve({ filter: /^import-in-the-middle(\/.*)?$/ }, (args) => ({ path: args.path, external: true }));
      },
    },
    gatedShimmer,
    boundedExports,
    otelContext,
    lazyOtlpTransformer,
    serializeSpanExport.plugin,
    lazyStringTable,
  ],
};
await build({ ...agentOptions, plugins: [await semanticConventionsUsed(agentOptions), ...agentOptions.plugins] });

// Worker threads' profiler: the native profiler, shaping and the message filter, nothing of OpenTelemetry.
await build({
  ...common,
  entryPoints: [join(here, 'src/worker-main.ts')],
  outfile: join(dist, 'worker.js'),
  plugins: [
    {
      name: 'pprof-external',
      setup(b) {
        b.onResolve({ filter: /^@datadog\/pprof(\/.*)?$/ }, () => ({ path: PPROF_BUNDLE, external: true }));
      },
    },
    lazyStringTable,
  ],
});

// The swaps above fail silently if upstream renames the files they replace: check the bundle.
{
  const agentJs = readFileSync(join(dist, 'agent.js'), 'utf8');
  for (const [what, present] of [
    ['the bounded retrying transport', /\bnew BoundedRetryingTransport\(/.test(agentJs)],
    ["upstream's retrying transport gone", !/[^d]RetryingTransport=class\b|class RetryingTransport\b/.test(agentJs)],
    ['the gated shimmer', agentJs.includes('instrumentationGate')],
    ["the agent's context values", agentJs.includes('ImmutableContext')],
    ["the API's context values gone", !agentJs.includes('"BaseContext"')],
    // Encoded batches pass through the exporters' serializer only if there is one copy of it (src/export/encoded-batches.ts).
    ['one OTLP trace serializer', agentJs.split('ProtobufTraceSerializer={serializeRequest:').length === 2],
  ]) {
    if (!present) throw new Error(`agent.js: ${what} check failed; see the plugins in injector/build.mjs`);
  }
}

await build({
  ...common,
  entryPoints: [join(here, 'src/profiling/native/pprof-entry.ts')],
  outfile: join(dist, PPROF_BUNDLE),
  plugins: [lazyStringTable, runWithoutContextExport.plugin],
});
if (!readFileSync(join(dist, PPROF_BUNDLE), 'utf8').includes('.runWithoutContext=runWithoutContext')) {
  throw new Error(`${PPROF_BUNDLE}: runWithoutContext missing; see runWithoutContextExport in injector/added-exports.mjs`);
}

const prebuilds = join(dirname(require.resolve('@datadog/pprof/package.json')), 'prebuilds');
for (const platform of PLATFORMS) {
  cpSync(join(prebuilds, platform), join(dist, 'pprof/prebuilds', platform), { recursive: true });
}
// Shipped as files, not bundled (see src/tracing/esm-hooks.ts), with their own dependencies.
for (const name of ['import-in-the-middle', 'cjs-module-lexer', 'es-module-lexer', 'module-details-from-path']) {
  const from = packageDir(name, dirname(require.resolve('@opentelemetry/instrumentation/package.json')));
  cpSync(from, join(dist, 'node_modules', name), { recursive: true, filter: (src) => !/\/(test|tests|benchmark|\.github)(\/|$)/.test(src) });
}
writeFileSync(join(dist, 'pprof/package.json'), JSON.stringify({ name: 'span-profiling-pprof', private: true }) + '\n');

/** A package's folder as Node would find it from `from`, without relying on its "exports". */
function packageDir(name, from) {
  for (let dir = from; ; dir = dirname(dir)) {
    const candidate = join(dir, 'node_modules', name);
    if (existsSync(join(candidate, 'package.json'))) return candidate;
    if (dirname(dir) === dir) throw new Error(`cannot find ${name} from ${from}`);
  }
}

// The npm package for apps that set up OpenTelemetry in code (package/README.md): the library
// form, with the app's @opentelemetry/api (a peer) and the installed @datadog/pprof left as requires.
const pkgDir = join(dist, 'package');
await build({
  ...common,
  entryPoints: [join(here, 'src/lib.ts')],
  outfile: join(pkgDir, 'index.js'),
  plugins: [
    {
      name: 'package-externals',
      setup(b) {
        b.onResolve({ filter: /^@opentelemetry\/api$/ }, (args) => ({ path: args.path, external: true }));
        b.onResolve({ filter: /^@datadog\/pprof$/ }, () => ({ path: join(here, 'src/profiling/native/pprof-entry.ts') }));
        b.onResolve({ filter: /^@datadog\/pprof\// }, (args) => ({ path: args.path, external: true }));
      },
    },
    lazyStringTable,
  ],
});
for (const file of ['package.json', 'README.md', 'index.d.ts']) cpSync(join(here, 'package', file), join(pkgDir, file));

// esbuild's helpers made lean in every bundle (lean-helpers.mjs); the agent's must have both.
withLeanHelpers(join(dist, 'agent.js'), ['__toCommonJS', '__name']);
for (const file of ['register.js', 'worker.js', PPROF_BUNDLE, 'package/index.js']) withLeanHelpers(join(dist, file), []);

const bytes = (p) => (statSync(p).isDirectory() ? readdirSync(p).reduce((n, f) => n + bytes(join(p, f)), 0) : statSync(p).size);
console.error(`agent built in ${dist}: ${(bytes(dist) / 1e6).toFixed(1)} MB`);
