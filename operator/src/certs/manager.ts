/**
 * The webhook's certificate, kept in one Secret that every replica serves
 * from. In `self` mode the leader creates the CA and serving certificate,
 * renews them before they expire, and writes the CA into the
 * MutatingWebhookConfiguration; in `external` mode (cert-manager, or a Secret
 * the user provides) the operator only reads the Secret.
 */
import type { Kube } from '../kube/client';
import { isConflict, isNotFound } from '../kube/client';
import type { Log } from '../log';
import { createCA, createServingCert, needsRenewal, type KeyPair } from './x509';

export interface CertConfig {
  mode: 'self' | 'external';
  namespace: string;
  secretName: string;
  /** DNS names the serving certificate must cover (service.namespace.svc, ...). */
  dnsNames: string[];
  webhookConfigName: string;
  caValidDays?: number;
  certValidDays?: number;
  renewBeforeDays?: number;
}

export interface ServingCert {
  cert: string;
  key: string;
  ca: string;
}

interface Secret {
  metadata: { name: string; namespace: string; resourceVersion?: string; labels?: Record<string, string> };
  type?: string;
  data?: Record<string, string>;
}

interface WebhookConfiguration {
  metadata: { name: string; resourceVersion?: string };
  webhooks?: { name: string; clientConfig: { caBundle?: string; [k: string]: unknown }; [k: string]: unknown }[];
}

const b64 = (s: string): string => Buffer.from(s).toString('base64');
const unb64 = (s: string | undefined): string => (s === undefined ? '' : Buffer.from(s, 'base64').toString('utf8'));

export class CertManager {
  constructor(
    private readonly kube: Kube,
    private readonly config: CertConfig,
    private readonly log: Log,
    private readonly now: () => Date = () => new Date(),
  ) {}

  private get secretPath(): string {
    return `/api/v1/namespaces/${this.config.namespace}/secrets/${this.config.secretName}`;
  }

  /** The certificate in the Secret, if there is a usable one. */
  async load(): Promise<ServingCert | undefined> {
    const secret = await this.kube.get<Secret>(this.secretPath);
    const cert = unb64(secret?.data?.['tls.crt']);
    const key = unb64(secret?.data?.['tls.key']);
    if (cert === '' || key === '') return undefined;
    return { cert, key, ca: unb64(secret?.data?.['ca.crt']) };
  }

  /**
   * Leader only: makes the Secret and the webhook's caBundle right. Safe to run any number of times.
   * `onIssued` gets a newly issued certificate before the Secret shows it, so that the leader's own
   * webhook never serves an older certificate than the one a reader of the Secret finds.
   */
  async reconcile(onIssued?: (cert: ServingCert) => void): Promise<ServingCert | undefined> {
    if (this.config.mode === 'external') return this.load();
    const c = this.config;
    const now = this.now();
    const secret = await this.kube.get<Secret>(this.secretPath);
    let ca: KeyPair = { cert: unb64(secret?.data?.['ca.crt']), key: unb64(secret?.data?.['ca.key']) };
    let serving: KeyPair = { cert: unb64(secret?.data?.['tls.crt']), key: unb64(secret?.data?.['tls.key']) };
    let previousCa: string | undefined;
    let changed = false;
    if (ca.key === '' || needsRenewal(ca.cert, now, Math.max(c.renewBeforeDays ?? 30, (c.certValidDays ?? 365) + 1))) {
      previousCa = ca.cert === '' ? undefined : ca.cert;
      ca = createCA('span-profiling-operator-ca', now, c.caValidDays ?? 3650);
      changed = true;
      this.log.info('created the webhook CA', { secret: `${c.namespace}/${c.secretName}` });
    }
    if (changed || serving.key === '' || needsRenewal(serving.cert, now, c.renewBeforeDays ?? 30, c.dnsNames)) {
      serving = createServingCert(ca, c.dnsNames, now, c.certValidDays ?? 365);
      changed = true;
      this.log.info('issued the webhook serving certificate', { names: c.dnsNames });
    }
    // During a CA change, trust both CAs before any replica serves a certificate from the new one.
    const bundle = previousCa === undefined ? ca.cert : `${ca.cert}${previousCa}`;
    if (changed && previousCa !== undefined) await this.ensureCaBundle(bundle);
    if (changed) onIssued?.({ cert: serving.cert, key: serving.key, ca: ca.cert });
    if (changed) {
      const body: Secret = {
        metadata: { name: c.secretName, namespace: c.namespace, labels: { 'app.kubernetes.io/part-of': 'span-profiling-operator' }, ...(secret?.metadata.resourceVersion ? { resourceVersion: secret.metadata.resourceVersion } : {}) },
        type: 'kubernetes.io/tls',
        data: { 'ca.crt': b64(ca.cert), 'ca.key': b64(ca.key), 'tls.crt': b64(serving.cert), 'tls.key': b64(serving.key) },
      };
      try {
        if (secret === undefined) await this.kube.request('POST', `/api/v1/namespaces/${c.namespace}/secrets`, body);
        else await this.kube.request('PUT', this.secretPath, body);
      } catch (err) {
        // Another replica wrote it first: use theirs.
        if (isConflict(err)) return this.load();
        throw err;
      }
    }
    await this.ensureCaBundle(bundle);
    return { cert: serving.cert, key: serving.key, ca: ca.cert };
  }

  private async ensureCaBundle(bundle: string): Promise<void> {
    const path = `/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/${this.config.webhookConfigName}`;
    for (let attempt = 0; attempt < 5; attempt++) {
      const config = await this.kube.get<WebhookConfiguration>(path);
      if (config === undefined) {
        this.log.warn('MutatingWebhookConfiguration not found; the webhook is not registered', { name: this.config.webhookConfigName });
        return;
      }
      const wanted = b64(bundle);
      const webhooks = config.webhooks ?? [];
      // Keep a bundle that already trusts the current CA (it may also hold the previous one).
      if (webhooks.every((w) => w.clientConfig.caBundle !== undefined && unb64(w.clientConfig.caBundle).includes(bundle.split('-----END CERTIFICATE-----')[0]!))) return;
      for (const w of webhooks) w.clientConfig.caBundle = wanted;
      try {
        await this.kube.request('PUT', path, config);
        this.log.info('wrote the CA bundle into the webhook configuration', { name: this.config.webhookConfigName });
        return;
      } catch (err) {
        if (!isConflict(err) && !isNotFound(err)) throw err;
      }
    }
  }
}
