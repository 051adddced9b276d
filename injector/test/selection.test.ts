import { strict as assert } from 'node:assert';
import { selectInstrumentations, INSTRUMENTATIONS } from '../src/tracing/instrumentations';
import { esModulesReason, isEsModuleEntry } from '../src/tracing/esm-hooks';

describe('instrumentation selection from env', () => {
  it('turns on every instrumentation but fs and router by default (router: see src/tracing/instrumentations.ts)', () => {
    const { names, warnings } = selectInstrumentations({});
    assert.deepEqual(warnings, []);
    assert.ok(names.includes('http') && names.includes('express') && names.includes('pg') && names.includes('undici'));
    assert.ok(!names.includes('fs') && !names.includes('router'));
    assert.equal(names.length, Object.keys(INSTRUMENTATIONS).length - 2);
    assert.ok(selectInstrumentations({ OTEL_NODE_ENABLED_INSTRUMENTATIONS: 'http,router' }).names.includes('router'), 'router when named');
  });

  it('covers the servers and clients Node services use most', () => {
    for (const name of ['http', 'undici', 'express', 'koa', 'pg', 'mysql2', 'redis', 'ioredis', 'grpc']) assert.ok(name in INSTRUMENTATIONS, name);
  });

  it('turns on only the listed ones with OTEL_NODE_ENABLED_INSTRUMENTATIONS, fs included if named', () => {
    assert.deepEqual(selectInstrumentations({ OTEL_NODE_ENABLED_INSTRUMENTATIONS: 'http, fs,pg' }).names, ['fs', 'http', 'pg']);
  });

  it('accepts full package names too', () => {
    assert.deepEqual(selectInstrumentations({ OTEL_NODE_ENABLED_INSTRUMENTATIONS: '@opentelemetry/instrumentation-http' }).names, ['http']);
  });

  it('subtracts OTEL_NODE_DISABLED_INSTRUMENTATIONS, also from an enabled list', () => {
    assert.ok(!selectInstrumentations({ OTEL_NODE_DISABLED_INSTRUMENTATIONS: 'dns,net' }).names.includes('dns'));
    assert.deepEqual(selectInstrumentations({ OTEL_NODE_ENABLED_INSTRUMENTATIONS: 'http,dns', OTEL_NODE_DISABLED_INSTRUMENTATIONS: 'dns' }).names, ['http']);
  });

  it('warns about names it does not know, listing the ones it does', () => {
    const { names, warnings } = selectInstrumentations({ OTEL_NODE_ENABLED_INSTRUMENTATIONS: 'http,expresss' });
    assert.deepEqual(names, ['http']);
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!, /unknown instrumentation\(s\) expresss; known: amqplib, /);
  });
});

describe('ES module entry detection', () => {
  const files: Record<string, string> = {
    '/srv/esm/package.json': '{"type":"module"}',
    '/srv/cjs/package.json': '{"name":"x"}',
    '/srv/broken/package.json': '{not json',
  };
  const read = (f: string): string => {
    if (f in files) return files[f]!;
    throw new Error('ENOENT');
  };
  const cases: [string | undefined, boolean][] = [
    ['/srv/app/main.mjs', true],
    ['/srv/esm/main.cjs', false],
    ['/srv/esm/src/main.js', true],
    ['/srv/cjs/main.js', false],
    ['/srv/esm/main', true],
    ['/srv/none/main.js', false],
    ['/srv/broken/main.js', false],
    [undefined, false],
  ];
  for (const [entry, esm] of cases) {
    it(`${entry ?? '(no entry: -e or REPL)'} is ${esm ? '' : 'not '}an ES module`, () => assert.equal(isEsModuleEntry(entry, read), esm));
  }
});

describe('whether a CommonJS app loads ES modules', () => {
  const files: Record<string, string> = {
    '/srv/nest/package.json': '{"dependencies":{"reflect-metadata":"^0.2.2","@nestjs/core":"^12.6.3"}}',
    '/srv/nest/node_modules/reflect-metadata/package.json': '{"name":"reflect-metadata"}',
    // Hoisted to a workspace root, as npm workspaces do.
    '/node_modules/@nestjs/core/package.json': '{"name":"@nestjs/core","type":"module"}',
    '/srv/plain/package.json': '{"dependencies":{"express":"^4"}}',
    '/srv/plain/node_modules/express/package.json': '{"name":"express"}',
    '/srv/missing/package.json': '{"dependencies":{"not-installed":"^1"}}',
    '/srv/esm/package.json': '{"type":"module"}',
  };
  const read = (f: string): string => {
    if (f in files) return files[f]!;
    throw new Error('ENOENT');
  };
  it('says so for an app whose dependency is an ES module package (found up the node_modules chain)', () =>
    assert.equal(esModulesReason('/srv/nest/main.js', read), 'its dependency @nestjs/core is an ES module package'));
  it('says so for an ES module entry', () => assert.equal(esModulesReason('/srv/esm/main.js', read), 'its entry is an ES module'));
  it('says nothing for a CommonJS app of CommonJS packages, or whose dependencies are not installed', () => {
    assert.equal(esModulesReason('/srv/plain/main.js', read), undefined);
    assert.equal(esModulesReason('/srv/missing/main.js', read), undefined);
    assert.equal(esModulesReason(undefined, read), undefined);
  });
});
