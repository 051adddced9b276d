import { strict as assert } from 'node:assert';
import { fitAgentResources, type LimitRangeLike } from '../src/inject/resources';

const DEFAULTS = { requests: { cpu: '10m', memory: '16Mi' }, limits: { cpu: '200m', memory: '64Mi' } };
const range = (limits: Record<string, unknown>, type = 'Container'): LimitRangeLike[] => [{ metadata: { name: 'hardened' }, spec: { limits: [{ type, ...limits }] } }];

describe("the agent container's resources in a namespace's LimitRanges", () => {
  it('keeps the wanted values where nothing limits them', () => {
    assert.deepEqual(fitAgentResources(DEFAULTS, []), { resources: DEFAULTS, changed: [] });
    assert.deepEqual(fitAgentResources(DEFAULTS, range({ max: { memory: '1Gi' } }, 'Pod')), { resources: DEFAULTS, changed: [] }, 'a Pod range is not a container range');
  });

  it('raises requests to the min', () => {
    const r = fitAgentResources(DEFAULTS, range({ min: { cpu: '50m', memory: '32Mi' } }));
    assert.ok('resources' in r);
    assert.deepEqual(r.resources.requests, { cpu: '50m', memory: '32Mi' });
    assert.deepEqual(r.resources.limits, DEFAULTS.limits);
  });

  it('lowers limits to the max', () => {
    const r = fitAgentResources(DEFAULTS, range({ max: { cpu: '100m', memory: '48Mi' } }));
    assert.ok('resources' in r);
    assert.deepEqual(r.resources.limits, { cpu: '100m', memory: '48Mi' });
    assert.deepEqual(r.resources.requests, DEFAULTS.requests);
  });

  it('keeps the limit within the limit/request ratio by raising the request', () => {
    const r = fitAgentResources(DEFAULTS, range({ maxLimitRequestRatio: { cpu: '2', memory: '1' } }));
    assert.ok('resources' in r);
    assert.deepEqual(r.resources, { requests: { cpu: '100m', memory: '64Mi' }, limits: DEFAULTS.limits });
  });

  it('takes the tightest of several ranges, and rounds inward (a decimal min is met)', () => {
    const ranges = [...range({ min: { memory: '50M' } }), ...range({ max: { memory: '60M', cpu: '150m' } })];
    const r = fitAgentResources(DEFAULTS, ranges);
    assert.ok('resources' in r);
    assert.equal(r.resources.requests['memory'], String(50_000_000));
    assert.equal(r.resources.limits['memory'], String(60_000_000));
    assert.equal(r.resources.limits['cpu'], '150m');
  });

  it('says why when nothing fits', () => {
    const r = fitAgentResources(DEFAULTS, range({ max: { memory: '4Mi' } }));
    assert.deepEqual(r, { problem: "the namespace's LimitRange hardened allows memory up to 4Mi, below what the agent's init container needs at least (8Mi)" });
  });
});
