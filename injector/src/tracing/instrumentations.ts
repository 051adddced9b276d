/**
 * The instrumentations the agent can turn on, by the short names
 * OTEL_NODE_ENABLED_INSTRUMENTATIONS / OTEL_NODE_DISABLED_INSTRUMENTATIONS use
 * (the package name without `@opentelemetry/instrumentation-`), with the same
 * rules as the upstream auto-instrumentation package.
 *
 * Each is required only when selected, so an unused one costs no start-up time.
 */
import type { Instrumentation } from '@opentelemetry/instrumentation';
import { FastifyRouteInstrumentation } from './fastify-route';
import { guardExpress, guardKoa, guardRouter } from './guards';
import { releaseKeepAliveContext } from './keep-alive';

type Module = Record<string, new () => Instrumentation>;
type ModuleWith<Config> = Record<string, new (config: Config) => Instrumentation>;

/* eslint-disable @typescript-eslint/no-require-imports */
export const INSTRUMENTATIONS: Readonly<Record<string, () => Instrumentation>> = {
  'amqplib': () => new (require('@opentelemetry/instrumentation-amqplib') as Module).AmqplibInstrumentation(),
  'aws-sdk': () => new (require('@opentelemetry/instrumentation-aws-sdk') as Module).AwsInstrumentation(),
  'bunyan': () => new (require('@opentelemetry/instrumentation-bunyan') as Module).BunyanInstrumentation(),
  'cassandra-driver': () => new (require('@opentelemetry/instrumentation-cassandra-driver') as Module).CassandraDriverInstrumentation(),
  'connect': () => new (require('@opentelemetry/instrumentation-connect') as Module).ConnectInstrumentation(),
  'dataloader': () => new (require('@opentelemetry/instrumentation-dataloader') as Module).DataloaderInstrumentation(),
  'dns': () => new (require('@opentelemetry/instrumentation-dns') as Module).DnsInstrumentation(),
  'express': () => guardExpress(new (require('@opentelemetry/instrumentation-express') as Module).ExpressInstrumentation()),
  // Not OpenTelemetry's: fastify's routes in span names, from fastify's diagnostics channel (fastify-route.ts).
  'fastify': () => new FastifyRouteInstrumentation(),
  'fs': () => new (require('@opentelemetry/instrumentation-fs') as Module).FsInstrumentation(),
  'generic-pool': () => new (require('@opentelemetry/instrumentation-generic-pool') as Module).GenericPoolInstrumentation(),
  'graphql': () => new (require('@opentelemetry/instrumentation-graphql') as Module).GraphQLInstrumentation(),
  'grpc': () => new (require('@opentelemetry/instrumentation-grpc') as Module).GrpcInstrumentation(),
  'hapi': () => new (require('@opentelemetry/instrumentation-hapi') as Module).HapiInstrumentation(),
  // Each server connection's keep-alive timer starts in the root context (keep-alive.ts).
  'http': () => new (require('@opentelemetry/instrumentation-http') as ModuleWith<{ requestHook: typeof releaseKeepAliveContext }>).HttpInstrumentation({ requestHook: releaseKeepAliveContext }),
  'ioredis': () => new (require('@opentelemetry/instrumentation-ioredis') as Module).IORedisInstrumentation(),
  'kafkajs': () => new (require('@opentelemetry/instrumentation-kafkajs') as Module).KafkaJsInstrumentation(),
  'knex': () => new (require('@opentelemetry/instrumentation-knex') as Module).KnexInstrumentation(),
  'koa': () => guardKoa(new (require('@opentelemetry/instrumentation-koa') as Module).KoaInstrumentation()),
  'lru-memoizer': () => new (require('@opentelemetry/instrumentation-lru-memoizer') as Module).LruMemoizerInstrumentation(),
  'memcached': () => new (require('@opentelemetry/instrumentation-memcached') as Module).MemcachedInstrumentation(),
  'mongodb': () => new (require('@opentelemetry/instrumentation-mongodb') as Module).MongoDBInstrumentation(),
  'mongoose': () => new (require('@opentelemetry/instrumentation-mongoose') as Module).MongooseInstrumentation(),
  'mysql': () => new (require('@opentelemetry/instrumentation-mysql') as Module).MySQLInstrumentation(),
  'mysql2': () => new (require('@opentelemetry/instrumentation-mysql2') as Module).MySQL2Instrumentation(),
  'nestjs-core': () => new (require('@opentelemetry/instrumentation-nestjs-core') as Module).NestInstrumentation(),
  'net': () => new (require('@opentelemetry/instrumentation-net') as Module).NetInstrumentation(),
  'openai': () => new (require('@opentelemetry/instrumentation-openai') as Module).OpenAIInstrumentation(),
  'oracledb': () => new (require('@opentelemetry/instrumentation-oracledb') as Module).OracleInstrumentation(),
  'pg': () => new (require('@opentelemetry/instrumentation-pg') as Module).PgInstrumentation(),
  'pino': () => new (require('@opentelemetry/instrumentation-pino') as Module).PinoInstrumentation(),
  'redis': () => new (require('@opentelemetry/instrumentation-redis') as Module).RedisInstrumentation(),
  'restify': () => new (require('@opentelemetry/instrumentation-restify') as Module).RestifyInstrumentation(),
  'router': () => guardRouter(new (require('@opentelemetry/instrumentation-router') as Module).RouterInstrumentation()),
  'socket.io': () => new (require('@opentelemetry/instrumentation-socket.io') as Module).SocketIoInstrumentation(),
  'tedious': () => new (require('@opentelemetry/instrumentation-tedious') as Module).TediousInstrumentation(),
  'undici': () => new (require('@opentelemetry/instrumentation-undici') as Module).UndiciInstrumentation(),
  'winston': () => new (require('@opentelemetry/instrumentation-winston') as Module).WinstonInstrumentation(),
};
/* eslint-enable @typescript-eslint/no-require-imports */

/**
 * Off unless named in OTEL_NODE_ENABLED_INSTRUMENTATIONS:
 * - fs: noisy (a span per file operation);
 * - router (the standalone `router` package): it hands each middleware a
 *   wrapper of `next` that is not `req.next`, which apps and express itself
 *   compare, and express 5 apps (which use `router` inside) already get their
 *   middleware and route spans from the express instrumentation.
 */
export const OFF_BY_DEFAULT: ReadonlySet<string> = new Set(['fs', 'router']);

type Env = Readonly<Record<string, string | undefined>>;

export interface Selection {
  names: string[];
  warnings: string[];
}

export function selectInstrumentations(env: Env, known: readonly string[] = Object.keys(INSTRUMENTATIONS)): Selection {
  const warnings: string[] = [];
  const list = (name: string): string[] | undefined => {
    const raw = env[name]?.trim();
    if (raw === undefined || raw === '') return undefined;
    const names = raw.split(',').map((n) => n.trim().replace(/^@opentelemetry\/instrumentation-/, '')).filter((n) => n !== '');
    const unknown = names.filter((n) => !known.includes(n));
    if (unknown.length > 0) warnings.push(`${name}: unknown instrumentation(s) ${unknown.join(', ')}; known: ${known.join(', ')}`);
    return names;
  };
  const enabled = list('OTEL_NODE_ENABLED_INSTRUMENTATIONS');
  const disabled = new Set(list('OTEL_NODE_DISABLED_INSTRUMENTATIONS') ?? []);
  const names = known.filter((n) => (enabled === undefined ? !OFF_BY_DEFAULT.has(n) : enabled.includes(n)) && !disabled.has(n));
  return { names, warnings };
}
