/**
 * A real Kubernetes control plane for tests, as controller-runtime's envtest
 * makes one: etcd and kube-apiserver on free loopback ports, an admin token,
 * a kubeconfig, and a teardown that always runs. No kubelet, scheduler or
 * controller-manager: objects are stored and admitted (webhooks included),
 * not run.
 */
import { execFile } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import * as https from 'node:https';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { freePort, ManagedProcess, removeDir, runCommand, tempDir, type CommandResult } from './processes';
import { requireTools, tool } from './toolchain';

const run = promisify(execFile);

export interface ControlPlane {
  server: string;
  kubeconfig: string;
  token: string;
  dir: string;
  kubectl(...args: string[]): Promise<{ stdout: string; stderr: string }>;
  /** kubectl that resolves with the exit code and output instead of throwing. */
  kubectlResult(args: string[], input?: string): Promise<{ code: number; stdout: string; stderr: string }>;
  /** A JSON request to the API server as the admin user. */
  /** A request as the cluster admin, or as someone else with impersonation headers (`Impersonate-User`); `accept` among them asks for another representation. */
  api<T>(method: string, urlPath: string, body?: unknown, contentType?: string, headers?: Record<string, string>): Promise<{ status: number; body: T }>;
  logs(): string;
  stop(): Promise<void>;
}

export async function startControlPlane(): Promise<ControlPlane> {
  requireTools('etcd', 'kube-apiserver', 'kubectl');
  const dir = tempDir('control-plane');
  const [etcdClient, etcdPeer, apiPort] = [await freePort(), await freePort(), await freePort()];

  const etcd = new ManagedProcess(
    'etcd',
    tool('etcd'),
    [
      '--name=default',
      `--data-dir=${path.join(dir, 'etcd')}`,
      `--listen-client-urls=http://127.0.0.1:${etcdClient}`,
      `--advertise-client-urls=http://127.0.0.1:${etcdClient}`,
      `--listen-peer-urls=http://127.0.0.1:${etcdPeer}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${etcdPeer}`,
      `--initial-cluster=default=http://127.0.0.1:${etcdPeer}`,
      '--unsafe-no-fsync',
      '--log-level=warn',
    ],
    { logDir: dir },
  );
  await etcd.waitUntil('etcd answers /health', async () => (await fetch(`http://127.0.0.1:${etcdClient}/health`)).ok, 30_000);

  const token = randomBytes(24).toString('hex');
  writeFileSync(path.join(dir, 'tokens.csv'), `${token},admin,admin-uid,"system:masters"\n`);
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  writeFileSync(path.join(dir, 'sa.key'), privateKey.export({ type: 'pkcs8', format: 'pem' }));
  writeFileSync(path.join(dir, 'sa.pub'), publicKey.export({ type: 'spki', format: 'pem' }));
  const certDir = path.join(dir, 'certs');

  const apiserver = new ManagedProcess(
    'kube-apiserver',
    tool('kube-apiserver'),
    [
      `--etcd-servers=http://127.0.0.1:${etcdClient}`,
      `--secure-port=${apiPort}`,
      '--bind-address=127.0.0.1',
      '--advertise-address=127.0.0.1',
      `--cert-dir=${certDir}`,
      `--token-auth-file=${path.join(dir, 'tokens.csv')}`,
      '--authorization-mode=RBAC',
      '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
      `--service-account-key-file=${path.join(dir, 'sa.pub')}`,
      `--service-account-signing-key-file=${path.join(dir, 'sa.key')}`,
      '--service-cluster-ip-range=10.0.0.0/24',
      // No controller-manager makes service accounts here.
      '--disable-admission-plugins=ServiceAccount',
      '--allow-privileged=true',
      '--enable-priority-and-fairness=false',
      '--v=1',
    ],
    { logDir: dir },
  );
  const server = `https://127.0.0.1:${apiPort}`;
  const caFile = path.join(certDir, 'apiserver.crt');
  const api = async <T>(method: string, urlPath: string, body?: unknown, contentType = 'application/json', headers: Record<string, string> = {}): Promise<{ status: number; body: T }> => {
    const payload = body === undefined ? undefined : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
    return new Promise((resolve, reject) => {
      const req = https.request(`${server}${urlPath}`, {
        method,
        ca: existsSync(caFile) ? readFileSync(caFile) : undefined,
        rejectUnauthorized: existsSync(caFile),
        headers: { accept: 'application/json', ...headers, authorization: `Bearer ${token}`, ...(payload ? { 'content-type': contentType, 'content-length': String(payload.length) } : {}) },
        timeout: 30_000,
      });
      req.on('error', reject);
      req.on('response', (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => {
          let parsed: unknown = text;
          try {
            parsed = JSON.parse(text);
          } catch {
            // plain text answer (e.g. /readyz)
          }
          resolve({ status: res.statusCode ?? 0, body: parsed as T });
        });
      });
      req.end(payload);
    });
  };
  await apiserver.waitUntil('kube-apiserver is ready', async () => existsSync(caFile) && (await api('GET', '/readyz')).status === 200, 90_000);

  const kubeconfig = path.join(dir, 'kubeconfig');
  writeFileSync(
    kubeconfig,
    [
      'apiVersion: v1',
      'kind: Config',
      'clusters:',
      '- name: test',
      '  cluster:',
      `    server: ${server}`,
      `    certificate-authority: ${caFile}`,
      'users:',
      '- name: admin',
      '  user:',
      `    token: ${token}`,
      'contexts:',
      '- name: test',
      '  context: {cluster: test, user: admin, namespace: default}',
      'current-context: test',
      '',
    ].join('\n'),
  );

  const kubectlResult = (args: string[], input?: string): Promise<CommandResult> => runCommand(tool('kubectl'), ['--kubeconfig', kubeconfig, ...args], { input });

  return {
    server,
    kubeconfig,
    token,
    dir,
    kubectl: (...args: string[]) => run(tool('kubectl'), ['--kubeconfig', kubeconfig, ...args], { maxBuffer: 64 << 20 }),
    kubectlResult,
    api,
    logs: () => `--- etcd\n${etcd.tail(20)}\n--- kube-apiserver\n${apiserver.tail(40)}`,
    stop: async () => {
      await apiserver.stop();
      await etcd.stop();
      removeDir(dir);
    },
  };
}
