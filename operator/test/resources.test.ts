import { strict as assert } from 'node:assert';
import { fitAgentResources, type LimitRangeLike, type PodContainers, type ResourceQuotaLike } from '../src/inject/resources';

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
    assert.deepEqual(r, { code: 'limit-range', policy: 'LimitRange/hardened', problem: "the namespace's LimitRange hardened allows memory up to 4Mi, below what the agent's init container needs at least (8Mi)" });
  });
});

describe("the agent container's resources under a namespace's ResourceQuotas", () => {
  const quota = (hard: Record<string, string>): ResourceQuotaLike[] => [{ metadata: { name: 'team' }, spec: { hard } }];
  const app = (resources: { requests?: Record<string, string>; limits?: Record<string, string> }, extra: Partial<PodContainers> = {}): PodContainers => ({
    containers: [{ name: 'app', resources }],
    initContainers: [],
    ...extra,
  });
  const fitted = (r: ReturnType<typeof fitAgentResources>) => {
    assert.ok('resources' in r, JSON.stringify(r));
    return r.resources;
  };

  it('asks no more of a tracked resource than the pod already does, so the quota counts the pod the same', () => {
    const r = fitted(fitAgentResources(DEFAULTS, [], quota({ 'requests.cpu': '1', 'limits.cpu': '2' }), app({ requests: { cpu: '5m', memory: '8Mi' }, limits: { cpu: '100m' } })));
    assert.equal(r.requests['cpu'], '5m');
    assert.equal(r.limits['cpu'], '100m');
    assert.deepEqual([r.requests['memory'], r.limits['memory']], ['16Mi', '64Mi'], 'memory is not tracked: unchanged');
  });

  it('counts sidecars with the containers and the largest other init container, as the quota does', () => {
    const pod = app({ requests: { cpu: '2m' } }, { initContainers: [{ name: 'proxy', restartPolicy: 'Always', resources: { requests: { cpu: '3m' } } }, { name: 'migrate', resources: { requests: { cpu: '7m' } } }] });
    assert.equal(fitted(fitAgentResources(DEFAULTS, [], quota({ cpu: '1' }), pod)).requests['cpu'], '7m');
    const small = app({ requests: { cpu: '2m' } }, { initContainers: [{ name: 'proxy', restartPolicy: 'Always', resources: { requests: { cpu: '3m' } } }] });
    assert.equal(fitted(fitAgentResources(DEFAULTS, [], quota({ cpu: '1' }), small)).requests['cpu'], '5m');
  });

  it('states ephemeral storage where a quota tracks it (a container without it is refused), and nowhere else', () => {
    const r = fitted(fitAgentResources(DEFAULTS, [], quota({ 'requests.ephemeral-storage': '10Gi', 'limits.ephemeral-storage': '20Gi' }), app({ requests: { 'ephemeral-storage': '100Mi' }, limits: { 'ephemeral-storage': '200Mi' } })));
    assert.equal(r.requests['ephemeral-storage'], '1Mi');
    assert.equal(r.limits['ephemeral-storage'], '64Mi');
    const tight = fitted(fitAgentResources(DEFAULTS, [], quota({ 'limits.ephemeral-storage': '1Gi' }), app({ limits: { 'ephemeral-storage': '20Mi' } })));
    assert.equal(tight.limits['ephemeral-storage'], '20Mi');
    assert.equal(tight.requests['ephemeral-storage'], undefined, 'requests are not tracked');
    const none = fitted(fitAgentResources(DEFAULTS, [], quota({ pods: '10' }), app({})));
    assert.deepEqual(none, DEFAULTS);
  });

  it('states ephemeral storage inside a LimitRange on it', () => {
    const r = fitted(fitAgentResources(DEFAULTS, range({ max: { 'ephemeral-storage': '10Mi' } })));
    assert.deepEqual([r.requests['ephemeral-storage'], r.limits['ephemeral-storage']], ['1Mi', '10Mi']);
  });

  it('keeps the floor and the LimitRange min over what the pod asks (the admission check then judges the headroom)', () => {
    assert.equal(fitted(fitAgentResources(DEFAULTS, [], quota({ 'requests.memory': '1Gi' }), app({ requests: { memory: '4Mi' } }))).requests['memory'], '8Mi');
    assert.equal(fitted(fitAgentResources(DEFAULTS, range({ min: { cpu: '3m' } }), quota({ 'requests.cpu': '1' }), app({ requests: { cpu: '1m' } }))).requests['cpu'], '3m');
  });

  it('keeps a lowered request within the limit/request ratio by lowering the limit', () => {
    const r = fitted(fitAgentResources(DEFAULTS, range({ maxLimitRequestRatio: { cpu: '4' } }), quota({ 'requests.cpu': '1' }), app({ requests: { cpu: '5m' }, limits: { cpu: '20m' } })));
    assert.deepEqual([r.requests['cpu'], r.limits['cpu']], ['5m', '20m']);
  });

  it('leaves what the SpanProfiling left unset unset where nothing wants it stated', () => {
    const onlyLimits = { requests: {}, limits: { cpu: '100m', memory: '32Mi' } };
    assert.deepEqual(fitAgentResources(onlyLimits, []), { resources: onlyLimits, changed: [] });
  });
});
