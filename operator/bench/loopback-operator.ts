/**
 * The operator as the benchmarks run it against the toolchain's API server:
 * the built operator.js as a process on loopback, and the webhook
 * configuration the chart would install, pointing at it.
 */
import * as path from 'node:path';
import { MUTATE_PATH } from '../src/webhook/server';
import { NOT_THE_CHECK } from '../src/webhook/admission-check';
import type { ControlPlane } from '../../e2e/harness/control-plane';
import { freePort, httpOk, ManagedProcess } from '../../e2e/harness/processes';
import { REPO_ROOT } from '../../e2e/harness/toolchain';

/** Registers the mutating webhook (as the chart does) at a loopback port; answers the port. */
export async function registerLoopbackWebhook(cp: ControlPlane): Promise<number> {
  const port = await freePort();
  await cp.kubectlResult(['apply', '-f', '-'], JSON.stringify({
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'MutatingWebhookConfiguration',
    metadata: { name: 'span-profiling-operator' },
    webhooks: [{ name: 'pods.spanprofiling.io', admissionReviewVersions: ['v1'], sideEffects: 'NoneOnDryRun', failurePolicy: 'Ignore', timeoutSeconds: 5, reinvocationPolicy: 'IfNeeded', clientConfig: { url: `https://127.0.0.1:${port}${MUTATE_PATH}` }, rules: [{ apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE'], resources: ['pods'] }], matchConditions: [{ name: 'not-the-admission-check', expression: NOT_THE_CHECK }], namespaceSelector: { matchLabels: { 'spanprofiling.io/injection': 'enabled' } } }],
  }));
  return port;
}

export interface LoopbackOperatorOptions {
  name: string;
  webhookPort: number;
  logDir: string;
  /** ADMISSION_CHECK: dry-run (the chart's) or off. */
  check: string;
  agentImage?: string;
  nodeOptions?: string;
  /** Node flags before the script (default: the image's, OPERATOR_NODE_FLAGS), e.g. ones NODE_OPTIONS refuses (`--cpu-prof`). */
  nodeArgs?: readonly string[];
  /** WEBHOOK_THREAD: the webhook in a thread of its own (the default) or in the main thread. */
  webhookThread?: 'on' | 'off';
}

/** The flags the operator's image starts node with (operator/Dockerfile's ENTRYPOINT, checked by test/image.test.ts). */
export const OPERATOR_NODE_FLAGS: readonly string[] = ['--heap-growing-percent=50', '--max-semi-space-size=4'];

/** Starts operator.js in namespace span-profiling and waits until it is ready. */
export async function startLoopbackOperator(cp: ControlPlane, o: LoopbackOperatorOptions): Promise<{ process: ManagedProcess; probePort: number }> {
  const probePort = await freePort();
  const operator = new ManagedProcess(o.name, process.execPath, [...(o.nodeArgs ?? OPERATOR_NODE_FLAGS), path.join(REPO_ROOT, 'operator/dist/operator.js')], {
    logDir: o.logDir,
    env: {
      PATH: process.env['PATH'],
      KUBECONFIG: cp.kubeconfig,
      OPERATOR_NAMESPACE: 'span-profiling',
      AGENT_IMAGE: o.agentImage ?? 'agent',
      WEBHOOK_PORT: String(o.webhookPort),
      PROBE_PORT: String(probePort),
      WEBHOOK_EXTRA_SANS: '127.0.0.1',
      LOG_LEVEL: 'warn',
      ADMISSION_CHECK: o.check,
      ...(o.nodeOptions !== undefined ? { NODE_OPTIONS: o.nodeOptions } : {}),
      ...(o.webhookThread !== undefined ? { WEBHOOK_THREAD: o.webhookThread } : {}),
    },
  });
  await operator.waitUntil('ready', () => httpOk(`http://127.0.0.1:${probePort}/readyz`), 60_000);
  return { process: operator, probePort };
}
