/**
 * Watching the OpenTelemetry API's process-wide registry (`../shared/otel-api.ts`),
 * so the agent gives way when the app registers its own SDK.
 *
 * A copy registers with `registerGlobal(type, instance)`, which always runs
 *   1. `globalThis[KEY] = globalThis[KEY] ?? { version }`   (a write to the key)
 *   2. `if (!allowOverride && api[type]) fail('Attempted duplicate registration')`
 *   3. `if (api.version !== VERSION) fail('does not match previously registered API')`
 *   4. `api[type] = instance`
 * while reads (`getGlobal`) never write. The watcher turns the key and the
 * entries into accessors, so it sees step 1 and knows that the next entry read
 * is step 2 for that type: there, a registration by someone other than the
 * agent can be let through (the agent removes its own instance first and
 * adopts the registering copy's version for step 3), and step 4 tells the
 * agent what the app registered. Nothing else about the registry changes:
 * every copy still reads and writes the same values.
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { API_KEY, TYPES, apiRegistry, type ApiType, type ApiRegistry } from '../shared/otel-api';

export interface RegistrationListener {
  /**
   * Someone else is registering `type` while the agent's own instance holds it.
   * Return the types to remove (`type` itself and any other the agent gives up
   * with it) to let the registration through, or an empty list to keep them.
   */
  yieldTo(type: ApiType): ApiType[];
  /** Someone else's instance of `type` landed in the registry. */
  registered(type: ApiType, instance: unknown): void;
  /** A registration the agent made way for did not land: the agent's instances are back. */
  restored(type: ApiType): void;
}

const WATCHED = Symbol('spanprofiling.io/watched');

export class ApiRegistryWatcher {
  private registry: ApiRegistry | undefined;
  /** Set by step 1 of a registration; the next entry read is its step 2. */
  private pending = false;
  /** A registration the agent made way for, until it lands (step 4) or fails (any other entry read). */
  private awaiting: { registry: ApiRegistry; type: ApiType; taken: Map<ApiType, unknown> } | undefined;
  /** The newest API version seen in this registration pass, restored once the pass is over. */
  private newest: string | undefined;
  private ownDepth = 0;
  private readonly own = new Set<unknown>();
  private installed = false;

  constructor(private readonly listener: RegistrationListener) {}

  install(): void {
    if (this.installed) return;
    this.installed = true;
    this.registry = apiRegistry();
    if (this.registry !== undefined) this.adopt(this.registry);
    Object.defineProperty(globalThis, API_KEY, {
      configurable: true,
      enumerable: false,
      get: () => this.registry,
      set: (value: ApiRegistry) => {
        // Step 1 of a registration, with the object the registering copy will use.
        if (value !== null && typeof value === 'object') {
          this.adopt(value);
          if (this.ownDepth === 0) this.matchVersion(value);
        }
        this.registry = value;
        this.pending = true;
        // registerGlobal is synchronous: whatever did not read an entry by the end of this pass was no registration.
        queueMicrotask(() => (this.pending = false));
      },
    });
  }

  /** Registers through the API while marking what lands as the agent's own. */
  asOwner<T>(register: () => T): T {
    this.ownDepth++;
    try {
      return register();
    } finally {
      this.ownDepth--;
    }
  }

  /** Whether the instance registered for `type` now is one the agent registered. */
  holdsOwn(type: ApiType): boolean {
    const value = this.registry?.[type];
    return value !== undefined && this.own.has(value);
  }

  /** Removes the agent's own instance of `type`, if it is the registered one. */
  release(type: ApiType): void {
    if (this.registry !== undefined && this.holdsOwn(type)) this.registry[type] = undefined;
  }

  /** Makes every entry of a registry object an accessor (its value kept), once per object. */
  private adopt(registry: ApiRegistry): void {
    const marked = registry as ApiRegistry & { [WATCHED]?: Set<ApiType> };
    const done = marked[WATCHED] ?? new Set<ApiType>();
    if (marked[WATCHED] === undefined) Object.defineProperty(registry, WATCHED, { value: done, enumerable: false });
    for (const type of TYPES) {
      // unregisterGlobal() deletes an entry, accessor and all: put one back at the next registration.
      const descriptor = Object.getOwnPropertyDescriptor(registry, type);
      if (done.has(type) && descriptor?.get !== undefined) continue;
      let value = descriptor?.value as unknown;
      Object.defineProperty(registry, type, {
        configurable: true,
        enumerable: true,
        get: () => {
          if (this.pending) {
            this.pending = false;
            value = this.check(registry, type, value);
          } else if (this.awaiting !== undefined) {
            // The registration the agent made way for failed (its error message reads `diag`): restore at once.
            this.restore();
          }
          return value;
        },
        set: (next: unknown) => {
          this.pending = false;
          if (this.awaiting?.type === type && next !== undefined) this.awaiting = undefined;
          value = next;
          if (next === undefined) return;
          if (this.ownDepth > 0) this.own.add(next);
          else this.listener.registered(type, next);
        },
      });
      done.add(type);
    }
  }

  /**
   * Step 3 of a registration insists on the registering copy's exact version,
   * while a copy reading the registry accepts any version of its major from
   * its own minor up. So, for a registration by another copy: its own version
   * while it registers, then the newer of the two, which both can read.
   */
  private matchVersion(registry: ApiRegistry): void {
    // Only while the agent's own registrations are in there: otherwise the API's rules apply unchanged.
    if (!TYPES.some((t) => this.holdsOwn(t))) return;
    const theirs = registeringApiVersion();
    const current = registry.version;
    if (theirs === undefined || current === undefined || theirs === current) return;
    const first = this.newest === undefined;
    this.newest = newerVersion(this.newest ?? current, theirs);
    registry.version = theirs;
    if (!first) return;
    queueMicrotask(() => {
      if (this.newest !== undefined) registry.version = this.newest;
      this.newest = undefined;
    });
  }

  /** Step 2 of a registration of `type`: what the registering copy sees as already registered. */
  private check(registry: ApiRegistry, type: ApiType, current: unknown): unknown {
    if (this.ownDepth > 0 || current === undefined || !this.own.has(current)) return current;
    const released = this.listener.yieldTo(type);
    if (!released.includes(type)) return current;
    // A bundled copy's version cannot be told (see matchVersion): its registration goes through
    // only if it is the version already there, else the agent's instances come back.
    const taken = new Map<ApiType, unknown>();
    for (const t of released) {
      const value = t === type ? current : registry[t];
      if (value !== undefined && this.own.has(value)) taken.set(t, value);
    }
    for (const t of released) if (t !== type) this.release(t);
    this.awaiting = { registry, type, taken };
    queueMicrotask(() => this.restore());
    return undefined;
  }

  /** Puts the agent's instances back when the registration it made way for did not land. */
  private restore(): void {
    const awaiting = this.awaiting;
    this.awaiting = undefined;
    if (awaiting === undefined || awaiting.registry[awaiting.type] !== undefined) return;
    for (const [t, value] of awaiting.taken) if (awaiting.registry[t] === undefined) this.asOwner(() => (awaiting.registry[t] = value));
    this.listener.restored(awaiting.type);
  }
}

/**
 * The version of the `@opentelemetry/api` copy whose registerGlobal is on the
 * stack (the first frame outside this file), read from its package.json.
 * Undefined when that frame is not in an installed copy (a bundled app).
 */
function registeringApiVersion(): string | undefined {
  const prepare = Error.prepareStackTrace;
  const limit = Error.stackTraceLimit;
  let files: (string | undefined)[] = [];
  try {
    Error.stackTraceLimit = 8;
    Error.prepareStackTrace = (_err, sites: NodeJS.CallSite[]) => sites;
    const holder: { stack?: NodeJS.CallSite[] } = {};
    Error.captureStackTrace(holder, registeringApiVersion);
    files = (holder.stack ?? []).map((site) => site.getFileName() ?? undefined);
  } catch {
    return undefined;
  } finally {
    Error.prepareStackTrace = prepare;
    Error.stackTraceLimit = limit;
  }
  const caller = files.find((file) => file !== undefined && file !== __filename);
  return caller === undefined ? undefined : apiPackageVersion(caller);
}

/** The newer of two versions of the same major (by minor, then patch). */
export function newerVersion(a: string, b: string): string {
  const parse = (v: string): number[] => v.split(/[.+-]/).slice(0, 3).map((n) => Number(n) || 0);
  const [x, y] = [parse(a), parse(b)];
  for (let i = 0; i < 3; i++) if (x[i] !== y[i]) return x[i]! > y[i]! ? a : b;
  return a;
}

const versionByDir = new Map<string, string | undefined>();

/** The version of the @opentelemetry/api package a file belongs to. */
export function apiPackageVersion(file: string): string | undefined {
  let dir = path.dirname(file.startsWith('file:') ? fileURLToPath(file) : file);
  const start = dir;
  if (versionByDir.has(start)) return versionByDir.get(start);
  let version: string | undefined;
  for (let depth = 0; depth < 6; depth++, dir = path.dirname(dir)) {
    let pkg: { name?: unknown; version?: unknown } | undefined;
    try {
      pkg = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as { name?: unknown; version?: unknown };
    } catch {
      pkg = undefined;
    }
    if (pkg !== undefined && pkg.name !== undefined) {
      if (pkg.name === '@opentelemetry/api' && typeof pkg.version === 'string') version = pkg.version;
      break;
    }
    if (path.dirname(dir) === dir) break;
  }
  versionByDir.set(start, version);
  return version;
}
