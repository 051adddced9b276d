/**
 * The operator's configuration from its environment (src/main.ts): what the
 * chart leaves out gets its default, and a value it cannot use stops the
 * operator with a message that names the variable.
 */
import { strict as assert } from 'node:assert';
import { readOperatorConfig } from '../src/main';

const required = { OPERATOR_NAMESPACE: 'span-profiling', AGENT_IMAGE: 'agent:1' };

describe('operator configuration', () => {
  it('defaults to the webhook in its own thread and the admission check on', () => {
    const config = readOperatorConfig(required);
    assert.equal(config.webhookThread, true);
    assert.deepEqual(config.admissionCheck, { timeoutMs: 2500, cacheMs: 30_000 });
    assert.equal(config.webhookPort, 9443);
    assert.deepEqual([...config.excludedNamespaces].sort(), ['kube-system', 'span-profiling']);
  });

  it('answers from the main thread with WEBHOOK_THREAD=off', () => {
    assert.equal(readOperatorConfig({ ...required, WEBHOOK_THREAD: 'off' }).webhookThread, false);
    assert.equal(readOperatorConfig({ ...required, WEBHOOK_THREAD: 'on' }).webhookThread, true);
  });

  it('refuses values it cannot use, naming the variable', () => {
    assert.throws(() => readOperatorConfig({ ...required, WEBHOOK_THREAD: 'yes' }), /WEBHOOK_THREAD=yes is not "on" or "off"/);
    assert.throws(() => readOperatorConfig({ ...required, ADMISSION_CHECK: 'maybe' }), /ADMISSION_CHECK=maybe/);
    assert.throws(() => readOperatorConfig({ ...required, WEBHOOK_PORT: '70000' }), /WEBHOOK_PORT=70000 is not a port number/);
    assert.throws(() => readOperatorConfig({ AGENT_IMAGE: 'agent:1' }), /OPERATOR_NAMESPACE is required/);
  });
});
