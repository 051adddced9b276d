/**
 * The operator process: every replica keeps the caches and serves the
 * webhook; the replica holding the Lease also manages the certificate and
 * runs the reconcilers. Configuration comes from the environment (set by the
 * Helm chart):
 *
 *   OPERATOR_NAMESPACE     namespace the operator runs in (required)
 *   POD_NAME               this replica's identity for leader election (default: hostname)
 *   AGENT_IMAGE            the agent init image injected into pods (required)
 *   AGENT_IMAGE_PULL_POLICY
 *   WEBHOOK_PORT           HTTPS port of the webhook (9443)
 *   PROBE_PORT             HTTP port of /healthz, /readyz, /metrics (8081)
 *   WEBHOOK_SERVICE_NAME   Service in front of the webhook (span-profiling-operator-webhook)
 *   WEBHOOK_CONFIG_NAME    MutatingWebhookConfiguration to keep the CA in (span-profiling-operator)
 *   CERT_MODE              self (default): the operator makes and rotates its certificate;
 *                          external: cert-manager or the user provides the Secret
 *   CERT_SECRET_NAME       Secret holding the serving certificate (span-profiling-operator-webhook-tls)
 *   LEASE_NAME             Lease for leader election (span-profiling-operator-leader)
 *   EXCLUDED_NAMESPACES    never labelled for injection (default: kube-system and OPERATOR_NAMESPACE)
 *   OPT_IN_NAMESPACES      opted in as if annotated spanprofiling.io/inject=true (comma-separated)
 *   WEBHOOK_EXTRA_SANS     extra names/IPs in the self-made certificate (for a webhook reached by URL)
 *   ADMISSION_CHECK        dry-run (default): the API server judges each mutated pod in a dry run
 *                          before it is answered (webhook/admission-check.ts); off: it does not
 *   ADMISSION_CHECK_TIMEOUT_MS   how long that dry run may take (2500; keep it under the webhook's timeoutSeconds)
 *   ADMISSION_CHECK_CACHE_SECONDS  how long a verdict is reused for the same pod of the same template (30)
 *   WEBHOOK_THREAD         on (default): the webhook answers in a thread of its own, so admission
 *                          never waits for the controller (webhook/thread.ts); off: from the main thread
 *   LOG_LEVEL              debug, info, warn, error
 *   KUBECONFIG             outside a cluster: which kubeconfig to use
 *
 * `operator.js uninstall` instead undoes what the operator made at run time
 * (src/uninstall.ts; the chart's pre-delete hook). It also reads
 * OPERATOR_DEPLOYMENT, the name of the operator's Deployment.
 */
import * as http from 'node:http';
import { hostname } from 'node:os';
import { CertManager, type ServingCert } from './certs/manager';
import { Caches, Controller } from './controller/controller';
import { authFromEnvironment, HttpKube, kubeFromEnvironment } from './kube/client';
import { LeaderElector } from './kube/lease';
import { EventRecorder } from './controller/events';
import { errorMessage, jsonLog, type Level } from './log';
import { operatorMetrics } from './metrics';
import { answerProbe, type Readiness } from './probes';
import { uninstall } from './uninstall';
import { reportTo, WebhookServer } from './webhook/server';
import { AdmissionCheck } from './webhook/admission-check';
import { CredentialsNotSendable, MIRRORED, WebhookThread } from './webhook/thread';
import { InputsVersion } from './webhook/answers';
import { cachedContext } from './webhook/review';

/** Pods left without the agent for a policy of their namespace: their Events say so (reason AdmissionPolicy). */
const POLICY_CODES = new Set(['limit-range', 'pod-security', 'resource-quota', 'admission-refused']);

type Env = Readonly<Record<string, string | undefined>>;

export interface OperatorConfig {
  namespace: string;
  identity: string;
  agentImage: string;
  agentImagePullPolicy: string | undefined;
  webhookPort: number;
  probePort: number;
  serviceName: string;
  webhookConfigName: string;
  certMode: 'self' | 'external';
  certSecretName: string;
  leaseName: string;
  excludedNamespaces: Set<string>;
  optInNamespaces: Set<string>;
  extraSans: string[];
  admissionCheck: { timeoutMs: number; cacheMs: number } | undefined;
  logLevel: Level;
  kubeconfig: string | undefined;
  /** The webhook answers in a thread of its own (webhook/thread.ts); false: from the main thread. */
  webhookThread: boolean;
}

/** The webhook, in its thread or in this one. */
type Webhook = WebhookServer | WebhookThread;

export function readOperatorConfig(env: Env): OperatorConfig {
  const required = (name: string): string => {
    const v = env[name]?.trim();
    if (!v) throw new Error(`${name} is required (the Helm chart sets it)`);
    return v;
  };
  const port = (name: string, fallback: number): number => {
    const v = Number(env[name] ?? fallback);
    if (!Number.isInteger(v) || v < 0 || v > 65535) throw new Error(`${name}=${env[name]} is not a port number`);
    return v;
  };
  const namespace = required('OPERATOR_NAMESPACE');
  const certMode = env['CERT_MODE'] ?? 'self';
  if (certMode !== 'self' && certMode !== 'external') throw new Error(`CERT_MODE=${certMode} is not "self" or "external"`);
  const level = (env['LOG_LEVEL'] ?? 'info') as Level;
  const check = env['ADMISSION_CHECK'] ?? 'dry-run';
  if (check !== 'dry-run' && check !== 'off') throw new Error(`ADMISSION_CHECK=${check} is not "dry-run" or "off"`);
  const thread = env['WEBHOOK_THREAD'] ?? 'on';
  if (thread !== 'on' && thread !== 'off') throw new Error(`WEBHOOK_THREAD=${thread} is not "on" or "off"`);
  const positive = (name: string, fallback: number): number => {
    const v = Number(env[name] ?? fallback);
    if (!Number.isFinite(v) || v <= 0) throw new Error(`${name}=${env[name]} is not a positive number`);
    return v;
  };
  if (!['debug', 'info', 'warn', 'error'].includes(level)) throw new Error(`LOG_LEVEL=${level} is not debug, info, warn or error`);
  return {
    namespace,
    identity: env['POD_NAME'] ?? hostname(),
    agentImage: required('AGENT_IMAGE'),
    agentImagePullPolicy: env['AGENT_IMAGE_PULL_POLICY'],
    webhookPort: port('WEBHOOK_PORT', 9443),
    probePort: port('PROBE_PORT', 8081),
    serviceName: env['WEBHOOK_SERVICE_NAME'] ?? 'span-profiling-operator-webhook',
    webhookConfigName: env['WEBHOOK_CONFIG_NAME'] ?? 'span-profiling-operator',
    certMode,
    certSecretName: env['CERT_SECRET_NAME'] ?? 'span-profiling-operator-webhook-tls',
    leaseName: env['LEASE_NAME'] ?? 'span-profiling-operator-leader',
    excludedNamespaces: new Set((env['EXCLUDED_NAMESPACES'] ?? `kube-system,${namespace}`).split(',').map((s) => s.trim()).filter(Boolean)),
    optInNamespaces: new Set((env['OPT_IN_NAMESPACES'] ?? '').split(',').map((s) => s.trim()).filter(Boolean)),
    extraSans: (env['WEBHOOK_EXTRA_SANS'] ?? '').split(',').map((s) => s.trim()).filter(Boolean),
    admissionCheck: check === 'off' ? undefined : { timeoutMs: positive('ADMISSION_CHECK_TIMEOUT_MS', 2500), cacheMs: positive('ADMISSION_CHECK_CACHE_SECONDS', 30) * 1000 },
    logLevel: level,
    kubeconfig: env['KUBECONFIG'],
    webhookThread: thread === 'on',
  };
}

export interface RunningOperator {
  webhookPort: number;
  probePort: number;
  stop(): Promise<void>;
}

export async function runOperator(config: OperatorConfig): Promise<RunningOperator> {
  const log = jsonLog(config.logLevel);
  const metrics = operatorMetrics();
  metrics.leader.set({}, 0);
  const auth = await authFromEnvironment(config.kubeconfig);
  const kube = new HttpKube(auth);
  const caches = new Caches(kube, log);
  const events = new EventRecorder(kube, log);
  const controller = new Controller(kube, caches, { excludedNamespaces: config.excludedNamespaces, optInNamespaces: config.optInNamespaces, agentImage: config.agentImage }, log, metrics, events);
  const certs = new CertManager(kube, {
    mode: config.certMode,
    namespace: config.namespace,
    secretName: config.certSecretName,
    webhookConfigName: config.webhookConfigName,
    dnsNames: [`${config.serviceName}.${config.namespace}.svc`, `${config.serviceName}.${config.namespace}.svc.cluster.local`, `${config.serviceName}.${config.namespace}`, config.serviceName, ...config.extraSans],
  }, log);

  let webhook: Webhook | undefined;
  let served: ServingCert | undefined;
  let serving = false;
  const ready: Readiness = () => (!caches.synced ? 'caches not synced' : !serving ? 'waiting for the webhook certificate' : true);

  const probes = http.createServer((req, res) => {
    if (answerProbe(req, res, ready, () => metrics.registry.render())) return;
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end('not found');
  });
  await new Promise<void>((resolve) => probes.listen(config.probePort, resolve));
  const probePort = (probes.address() as { port: number }).port;

  const elector = new LeaderElector(kube, {
    namespace: config.namespace,
    name: config.leaseName,
    identity: config.identity,
    onStartedLeading: () => {
      metrics.leader.set({}, 1);
      void refreshCertificate(true);
      controller.activate();
    },
    onStoppedLeading: () => {
      metrics.leader.set({}, 0);
      controller.deactivate();
    },
  }, log);

  const serve = (current: ServingCert): void => {
    if (webhook === undefined || served?.cert === current.cert) return;
    webhook.setCertificate(current.cert, current.key);
    served = current;
    log.info('serving a new webhook certificate');
  };
  const refreshCertificate = async (asLeader: boolean): Promise<void> => {
    try {
      // The leader serves a certificate it issues before writing it to the Secret.
      const current = asLeader ? await certs.reconcile(serve) : await certs.load();
      if (current !== undefined) serve(current);
    } catch (err) {
      log.warn('certificate check failed', { error: errorMessage(err) });
    }
  };

  await caches.start();
  log.info('caches synced');
  elector.start();

  const report = reportTo(metrics, log, (sp, message, code) => events.warnOnce(sp, POLICY_CODES.has(code) ? 'AdmissionPolicy' : 'PodWarning', message));
  const defaults = { agentImage: config.agentImage, ...(config.agentImagePullPolicy ? { imagePullPolicy: config.agentImagePullPolicy } : {}) };
  const inThisThread = async (tls: ServingCert): Promise<{ webhook: Webhook; port: number }> => {
    const version = new InputsVersion();
    for (const kind of MIRRORED) {
      version.reset(kind, caches[kind].list());
      caches[kind].onChange((type, obj) => (type === 'SYNC' || obj === undefined ? version.reset(kind, caches[kind].list()) : version.observe(kind, type, obj)));
    }
    const server = new WebhookServer({
      port: config.webhookPort,
      tls,
      context: cachedContext(
        {
          namespace: (name) => caches.namespaces.get(undefined, name),
          spanProfilings: () => caches.spanProfilings.list(),
          limitRangesOf: (ns) => caches.limitRangesOf(ns),
          resourceQuotasOf: (ns) => caches.resourceQuotasOf(ns),
          inputsVersion: () => version.current,
        },
        config.optInNamespaces,
        defaults,
      ),
      log,
      ready,
      report,
      metricsText: () => metrics.registry.render(),
      ...(config.admissionCheck !== undefined ? { admissionCheck: new AdmissionCheck(kube, config.admissionCheck) } : {}),
    });
    return { webhook: server, port: await server.start() };
  };
  const startWebhook = async (tls: ServingCert): Promise<{ webhook: Webhook; port: number }> => {
    if (!config.webhookThread) return inThisThread(tls);
    const thread = new WebhookThread({
      init: {
        port: config.webhookPort,
        tls,
        defaults,
        optInNamespaces: [...config.optInNamespaces],
        ...(config.admissionCheck !== undefined ? { admissionCheck: config.admissionCheck } : {}),
        logLevel: config.logLevel,
      },
      sources: caches,
      report,
      metricsText: () => metrics.registry.render(),
      log,
      credentials: auth,
    });
    try {
      return { webhook: thread, port: await thread.start() };
    } catch (err) {
      if (!(err instanceof CredentialsNotSendable)) throw err;
      log.warn('the webhook answers from the main thread', { reason: `${err.message}, which the webhook's thread cannot use for the admission check` });
      return inThisThread(tls);
    }
  };

  // Serve as soon as a certificate exists (the leader makes it in self mode).
  let webhookPort = 0;
  for (;;) {
    const cert = await (elector.isLeader ? certs.reconcile() : certs.load()).catch((err: unknown) => {
      log.warn('waiting for the webhook certificate', { error: errorMessage(err) });
      return undefined;
    });
    if (cert !== undefined) {
      ({ webhook, port: webhookPort } = await startWebhook(cert));
      served = cert;
      // The leader may have renewed the certificate between the load above and
      // now (its refresh skipped this replica's not-yet-started webhook): serve
      // the current one before reporting ready.
      await refreshCertificate(elector.isLeader);
      serving = true;
      log.info('webhook serving', { port: webhookPort });
      break;
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
  const certTimer = setInterval(() => void refreshCertificate(elector.isLeader), 60_000);
  certTimer.unref();

  return {
    webhookPort,
    probePort,
    stop: async () => {
      clearInterval(certTimer);
      controller.deactivate();
      await elector.stop();
      caches.stop();
      await webhook?.close();
      await new Promise<void>((resolve) => probes.close(() => resolve()));
      probes.closeAllConnections();
    },
  };
}

/** `operator.js uninstall` (the chart's pre-delete hook): always exits 0 so that it never blocks helm uninstall. */
async function uninstallCommand(env: NodeJS.ProcessEnv): Promise<void> {
  const log = jsonLog((env['LOG_LEVEL'] ?? 'info') as Level);
  try {
    const namespace = env['OPERATOR_NAMESPACE']?.trim();
    const deployment = env['OPERATOR_DEPLOYMENT']?.trim();
    if (!namespace || !deployment) throw new Error('OPERATOR_NAMESPACE and OPERATOR_DEPLOYMENT are required (the Helm chart sets them)');
    await uninstall(await kubeFromEnvironment(env['KUBECONFIG']), {
      namespace,
      deployment,
      leaseName: env['LEASE_NAME'] ?? 'span-profiling-operator-leader',
      certMode: env['CERT_MODE'] === 'external' ? 'external' : 'self',
      certSecretName: env['CERT_SECRET_NAME'] ?? 'span-profiling-operator-webhook-tls',
    }, log);
  } catch (err) {
    log.error('uninstall: could not run', { error: errorMessage(err) });
  }
}

if (require.main === module && process.argv[2] === 'uninstall') {
  void uninstallCommand(process.env).then(() => process.exit(0));
} else if (require.main === module) {
  let config: OperatorConfig;
  try {
    config = readOperatorConfig(process.env);
  } catch (err) {
    process.stderr.write(`span-profiling-operator: ${errorMessage(err)}\n`);
    process.exit(2);
  }
  runOperator(config).then(
    (operator) => {
      let stopping = false;
      const stop = (): void => {
        if (stopping) return;
        stopping = true;
        void operator.stop().then(() => process.exit(0));
      };
      process.on('SIGTERM', stop);
      process.on('SIGINT', stop);
    },
    (err: unknown) => {
      process.stderr.write(`span-profiling-operator: ${errorMessage(err)}\n`);
      process.exit(1);
    },
  );
}
