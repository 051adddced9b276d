/**
 * Instrumentations made when a module they hook (an npm package, or a core
 * module such as http) is first required, not at start-up: most processes
 * load few of the thirty-odd modules the agent can instrument, and making
 * every instrumentation up front (its code, the builtins it loads, its hooks)
 * cost each process that ends quickly 10-20 ms on Node 24. A require hook
 * sees only requires from user-land code, as the instrumentations' own hooks
 * do, so nothing is patched later than before.
 *
 * One wrapper of Module.prototype.require, installed before any
 * instrumentation exists, watches for bare specifiers of the packages in
 * the table build.mjs reads from the instrumentations. The first require of
 * one makes its instrumentation, whose hook (require-in-the-middle, installed
 * around this wrapper by the instrumentations made at start) then patches the
 * package as it loads, exactly as if it had been made at start.
 *
 * Used only when the app is CommonJS and at least one instrumentation is
 * made at start (undici, which hooks no module: its hook must sit outside
 * this wrapper); otherwise every instrumentation is made at start.
 */
import Module from 'node:module';

declare const __INSTRUMENTED_PACKAGES__: Record<string, string[]> | undefined;

/** Instrumentation key -> the packages it hooks; undefined outside the agent's bundle. */
export const INSTRUMENTED_PACKAGES: Readonly<Record<string, readonly string[]>> | undefined =
  typeof __INSTRUMENTED_PACKAGES__ === 'undefined' ? undefined : __INSTRUMENTED_PACKAGES__;

/**
 * 'express' -> 'express', '@hapi/hapi/lib/x' -> '@hapi/hapi', 'node:dns/promises' -> 'dns',
 * '/app/node_modules/pg/lib/index.js' -> 'pg' (a resolved path into node_modules); undefined for
 * other relative and absolute ids.
 */
export function packageOf(specifier: string): string | undefined {
  const id = specifier.startsWith('node:') ? specifier.slice(5) : specifier;
  const absolute = id.startsWith('/') || /^[a-zA-Z]:[\\/]/.test(id);
  if (absolute) {
    const last = [...id.matchAll(/[\\/]node_modules[\\/]((?:@[^\\/]+[\\/])?[^\\/]+)/g)].pop();
    return last === undefined ? undefined : last[1]!.replace(/\\/g, '/');
  }
  if (id === '' || id.startsWith('.')) return undefined;
  const parts = id.split('/');
  return id.startsWith('@') ? (parts.length >= 2 ? `${parts[0]}/${parts[1]}` : undefined) : parts[0];
}

/**
 * Calls `make(key)` for each instrumentation key just before the first require
 * of a module it hooks (`make` may be called again for a key made otherwise).
 */
export function makeOnFirstRequire(keys: readonly string[], table: Readonly<Record<string, readonly string[]>>, make: (key: string) => void): void {
  const waiting = new Map<string, string[]>();
  for (const key of keys) {
    for (const name of table[key] ?? []) {
      const pkg = packageOf(name);
      if (pkg !== undefined) waiting.set(pkg, [...(waiting.get(pkg) ?? []), key]);
    }
  }
  const proto = Module.prototype as unknown as { require: (this: unknown, id: string) => unknown };
  const original = proto.require;
  const due = (id: unknown): void => {
    if (waiting.size === 0 || typeof id !== 'string') return;
    const pkg = packageOf(id);
    const keysOfPkg = pkg === undefined ? undefined : waiting.get(pkg);
    if (keysOfPkg === undefined) return;
    waiting.delete(pkg!);
    for (const key of keysOfPkg) make(key);
  };
  proto.require = function require(this: unknown, id: string): unknown {
    due(id);
    // eslint-disable-next-line prefer-rest-params
    return original.apply(this, arguments as unknown as [string]);
  };
  // Core modules can also be had without require (Node 20.16+, 22.3+); require-in-the-middle hooks this too.
  const host = process as unknown as { getBuiltinModule?: (this: unknown, id: string) => unknown };
  const getBuiltin = host.getBuiltinModule;
  if (typeof getBuiltin === 'function') {
    host.getBuiltinModule = function getBuiltinModule(this: unknown, id: string): unknown {
      due(id);
      // eslint-disable-next-line prefer-rest-params
      return getBuiltin.apply(this, arguments as unknown as [string]);
    };
  }
}
