/**
 * A kind cluster for the end-to-end suite and the demo, with the images it
 * needs. SPANPROF_E2E_IMAGES picks how they are made (e2e/cluster/build-images.sh):
 *   local (default)  no registry: Debian root filesystems, the toolchain's
 *                    binaries, a kind node image assembled here;
 *   published        kind's default node image and public base images.
 * The specs and the flow are the same both ways.
 */
import { mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import * as path from 'node:path';
import { ManagedProcess, runChecked, runCommand, type CommandResult } from './processes';
import { REPO_ROOT, tool } from './toolchain';

export type ImagesMode = 'local' | 'published';

export interface Images {
  /** kind node image; empty: kind's default. */
  node: string;
  /** kubeadm imageRepository, etcd and CoreDNS tags of the local control-plane images; empty: kubeadm's defaults. */
  kubeadmImageRepository: string;
  etcdImageTag: string;
  corednsImageTag: string;
  operator: string;
  agent: string;
  shop: string;
  pyroscope: string;
  jaeger: string;
}

export const CACHE_DIR = process.env['SPANPROF_CACHE'] ?? path.join(process.env['XDG_CACHE_HOME'] ?? path.join(homedir(), '.cache'), 'span-profiling');

export function imagesMode(): ImagesMode {
  const mode = process.env['SPANPROF_E2E_IMAGES'] ?? 'local';
  if (mode !== 'local' && mode !== 'published') throw new Error(`SPANPROF_E2E_IMAGES=${mode}: expected local or published`);
  return mode;
}

const KEYS: Record<string, keyof Images> = {
  NODE_IMAGE: 'node',
  KUBEADM_IMAGE_REPOSITORY: 'kubeadmImageRepository',
  ETCD_IMAGE_TAG: 'etcdImageTag',
  COREDNS_IMAGE_TAG: 'corednsImageTag',
  OPERATOR_IMAGE: 'operator',
  AGENT_IMAGE: 'agent',
  SHOP_IMAGE: 'shop',
  PYROSCOPE_IMAGE: 'pyroscope',
  JAEGER_IMAGE: 'jaeger',
};

/** Builds (or finds, when unchanged) every image; progress goes to stderr. Needs `npm run build` first. */
export async function buildImages(mode: ImagesMode, log: (line: string) => void = () => {}): Promise<Images> {
  // The script shows its long steps (tools, images) on stderr: on a terminal in place, else as lines.
  const inplace = process.stderr.isTTY === true && process.env['CI'] === undefined;
  const env = { ...process.env, SPANPROF_PROGRESS: inplace ? 'inplace' : 'lines' };
  log(`building images (${mode}): what changed since the last run (log: ${path.join(logDir(), 'build-images.log')})`);
  const child = new ManagedProcess('build-images', 'bash', [path.join(REPO_ROOT, 'e2e/cluster/build-images.sh'), mode], { logDir: logDir(), separateStdout: true, env, echoStderr: process.stderr });
  await child.exited;
  // The failing step has printed the end of its own log already.
  if (child.exitCode !== 0) throw new Error(`e2e/cluster/build-images.sh ${mode} failed (exit ${child.exitCode}); its log: ${child.logFile}`);
  const images = {} as Images;
  for (const line of child.stdout().split('\n')) {
    const m = /^([A-Z_]+)=(.*)$/.exec(line.trim());
    if (m !== null && KEYS[m[1]!] !== undefined) images[KEYS[m[1]!]!] = m[2]!;
  }
  const missing = Object.values(KEYS).filter((k) => images[k] === undefined);
  if (missing.length > 0) throw new Error(`build-images.sh did not print ${missing.join(', ')}`);
  return images;
}

export function logDir(): string {
  const dir = path.join(CACHE_DIR, 'e2e-logs');
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** kind's cluster config: one node; in the local way, kubeadm uses the locally built control-plane images. */
export function kindConfig(images: Images): string {
  const lines = ['kind: Cluster', 'apiVersion: kind.x-k8s.io/v1alpha4', 'nodes:', '- role: control-plane'];
  if (images.node !== '') lines.push(`  image: ${images.node}`);
  if (images.kubeadmImageRepository !== '') {
    lines.push(
      'kubeadmConfigPatches:',
      '- |',
      '  kind: ClusterConfiguration',
      `  imageRepository: ${images.kubeadmImageRepository}`,
      '  etcd:',
      '    local:',
      `      imageTag: ${images.etcdImageTag}`,
      '  dns:',
      `    imageTag: ${images.corednsImageTag}`,
    );
  }
  return `${lines.join('\n')}\n`;
}

export class KindCluster {
  private constructor(
    readonly name: string,
    readonly kubeconfig: string,
    private readonly env: NodeJS.ProcessEnv,
  ) {}

  /**
   * The named cluster, created if it does not exist, reused otherwise (the demo
   * starts in seconds the second time) unless `fresh`. Images are loaded each time.
   */
  static async up(name: string, images: Images, log: (line: string) => void = () => {}, options: { fresh?: boolean } = {}): Promise<KindCluster> {
    const docker = (await runChecked('bash', [path.join(REPO_ROOT, 'e2e/cluster/docker.sh')])).trim().split('\n').pop()!;
    // kind calls `docker`: make it the engine's own client.
    const shim = path.join(CACHE_DIR, 'kind', 'bin');
    mkdirSync(shim, { recursive: true });
    rmSync(path.join(shim, 'docker'), { force: true });
    symlinkSync(docker, path.join(shim, 'docker'));
    const env = { ...process.env, PATH: `${shim}:${path.dirname(tool('kind'))}:${process.env['PATH'] ?? ''}` };
    const kubeconfig = path.join(CACHE_DIR, 'kind', `${name}.kubeconfig`);
    const cluster = new KindCluster(name, kubeconfig, env);

    let exists = (await cluster.kind(['get', 'clusters'])).stdout.split('\n').some((s) => s.trim() === name);
    if (exists && options.fresh === true) {
      log(`deleting the kind cluster ${name} left from an earlier run`);
      await cluster.delete();
      exists = false;
    }
    if (exists) {
      log(`reusing kind cluster ${name}`);
      writeFileSync(kubeconfig, (await cluster.kindChecked(['get', 'kubeconfig', '--name', name])));
    } else {
      log(`creating kind cluster ${name} (node image: ${images.node || "kind's default"})`);
      const config = path.join(CACHE_DIR, 'kind', `${name}.yaml`);
      writeFileSync(config, kindConfig(images));
      await cluster.kindChecked(['create', 'cluster', '--name', name, '--config', config, '--kubeconfig', kubeconfig, '--wait', '180s'], 600_000);
    }
    const appImages = [images.operator, images.agent, images.shop, images.pyroscope, images.jaeger];
    log(`loading ${appImages.length} images into the node`);
    await cluster.kindChecked(['load', 'docker-image', '--name', name, ...appImages], 600_000);
    return cluster;
  }

  kind(args: string[], timeoutMs = 120_000): Promise<CommandResult> {
    return runCommand(tool('kind'), args, { env: this.env, timeoutMs });
  }

  private kindChecked(args: string[], timeoutMs = 120_000): Promise<string> {
    return runChecked(tool('kind'), args, { env: this.env, timeoutMs });
  }

  kubectlResult(args: string[], input?: string): Promise<CommandResult> {
    return runCommand(tool('kubectl'), ['--kubeconfig', this.kubeconfig, ...args], { input, timeoutMs: 300_000 });
  }

  kubectl(args: string[], input?: string): Promise<string> {
    return runChecked(tool('kubectl'), ['--kubeconfig', this.kubeconfig, ...args], { input, timeoutMs: 300_000 });
  }

  async getJson<T>(args: string[]): Promise<T> {
    return JSON.parse(await this.kubectl([...args, '-o', 'json'])) as T;
  }

  /** kubectl apply of objects (JSON), server-side so repeated runs converge. */
  async apply(objects: object[]): Promise<void> {
    await this.kubectl(['apply', '--server-side', '--force-conflicts', '--field-manager', 'span-profiling-e2e', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'List', items: objects }));
  }

  helm(args: string[]): Promise<CommandResult> {
    return runCommand(tool('helm'), ['--kubeconfig', this.kubeconfig, ...args], { timeoutMs: 600_000 });
  }

  /**
   * `kubectl proxy` on a loopback port: the API server, and through its service
   * proxy the in-cluster Jaeger, Pyroscope and shop, as plain HTTP for fetch.
   */
  async proxy(): Promise<{ url: string; stop: () => Promise<void> }> {
    const child = new ManagedProcess('kubectl-proxy', tool('kubectl'), ['--kubeconfig', this.kubeconfig, 'proxy', '--address=127.0.0.1', '--port=0'], { logDir: logDir(), separateStdout: true });
    let url = '';
    await child.waitUntil('it prints its port', async () => {
      const m = /Starting to serve on 127\.0\.0\.1:(\d+)/.exec(child.stdout());
      if (m !== null) url = `http://127.0.0.1:${m[1]}`;
      return m !== null;
    }, 30_000);
    return { url, stop: () => child.stop() };
  }

  async delete(): Promise<void> {
    await this.kindChecked(['delete', 'cluster', '--name', this.name], 300_000);
  }

  /** Node-side logs (kubelet, containerd, pods) for a failure report. */
  async exportLogs(): Promise<string> {
    const dir = path.join(logDir(), `kind-${this.name}-${Date.now()}`);
    await this.kind(['export', 'logs', dir, '--name', this.name], 180_000);
    return dir;
  }
}
