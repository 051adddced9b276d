/**
 * Where the test toolchain's binaries are (built from Go modules by
 * e2e/toolchain/build.sh into a cache outside the repository).
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import * as path from 'node:path';

export const REPO_ROOT = path.resolve(__dirname, '../..');

let dir: string | undefined;

export function toolchainDir(): string {
  if (dir !== undefined) return dir;
  dir = process.env['SPANPROF_TOOLCHAIN_DIR'] ?? execFileSync('bash', [path.join(REPO_ROOT, 'e2e/toolchain/build.sh'), '--dir'], { encoding: 'utf8' }).trim().split('\n').pop()!;
  return dir;
}

export function tool(name: string): string {
  return path.join(toolchainDir(), name);
}

/** Whether a tool is built; suites that need a missing tool fail with this message rather than skip. */
export function requireTools(...names: string[]): void {
  const missing = names.filter((n) => !existsSync(tool(n)));
  if (missing.length > 0) throw new Error(`missing test tools ${missing.join(', ')} in ${toolchainDir()}: run bash e2e/toolchain/build.sh`);
}
