/**
 * The require hook that makes instrumentations at the first require of a
 * module they hook (src/tracing/lazy-instrumentations.ts); its effect on real apps is
 * covered by the agent suites, which run the built agent.
 */
import { strict as assert } from 'node:assert';
import { packageOf } from '../src/tracing/lazy-instrumentations';

describe('lazy instrumentations: which package a require names', () => {
  const cases: [string, string | undefined][] = [
    ['express', 'express'],
    ['express/lib/router', 'express'],
    ['@hapi/hapi', '@hapi/hapi'],
    ['@aws-sdk/middleware-stack/dist-cjs/index.js', '@aws-sdk/middleware-stack'],
    ['node:http', 'http'],
    ['node:dns/promises', 'dns'],
    ['fs/promises', 'fs'],
    ['/app/node_modules/pg/lib/index.js', 'pg'],
    ['/app/node_modules/a/node_modules/@redis/client/dist/index.js', '@redis/client'],
    ['C:\\app\\node_modules\\koa\\lib\\application.js', 'koa'],
    ['./routes', undefined],
    ['../lib/x', undefined],
    ['/app/server.js', undefined],
    ['', undefined],
  ];
  for (const [id, expected] of cases) it(`${JSON.stringify(id)} -> ${expected}`, () => assert.equal(packageOf(id), expected));
});
