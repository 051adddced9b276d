/**
 * Package-manager and tool processes the agent leaves alone. In a pod,
 * NODE_OPTIONS reaches every Node.js process: `npm start` runs npm itself
 * under it, then the app; `npx`, `yarn`, `pnpm` and `corepack` wrap apps the
 * same way. Only the app should be traced and profiled.
 *
 * A process is a tool when its main script (process.argv[1]) is one of
 * theirs, by file name: npm-cli.js and npx-cli.js, yarn.js or a Yarn release
 * (yarn-4.5.0.cjs), pnpm.cjs / pnpx.cjs, corepack.js and its shims, and the
 * bin links (npm, npx, yarn, pnpm, ...).
 *
 * SPANPROFILING_SKIP_TOOLS replaces the list (comma-separated names; `none`
 * profiles every process).
 */
export const DEFAULT_TOOLS = ['npm', 'npx', 'yarn', 'yarnpkg', 'pnpm', 'pnpx', 'corepack', 'node-gyp', 'nodemon'] as const;

/** The tool's name when `script` is one of the tools to skip, else undefined. */
export function toolName(script: string | undefined, env: Readonly<Record<string, string | undefined>>): string | undefined {
  if (script === undefined || script === '') return undefined;
  const configured = env['SPANPROFILING_SKIP_TOOLS']?.trim();
  const tools = configured === undefined || configured === '' ? DEFAULT_TOOLS : configured.toLowerCase() === 'none' ? [] : configured.split(',').map((t) => t.trim().toLowerCase());
  if (tools.length === 0) return undefined;
  const base = script.split(/[\\/]/).pop()!.toLowerCase();
  const name = base
    .replace(/\.(c|m)?js$/, '')
    .replace(/-cli$/, '')
    // a Yarn release file: yarn-4.5.0
    .replace(/-\d+\.\d+\.\d+.*$/, '');
  return (tools as readonly string[]).includes(name) ? name : undefined;
}
