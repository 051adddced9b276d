/**
 * TypeScript types from the CRD's OpenAPI schema (crds/, the single source of
 * truth): `npm run generate:api` writes operator/src/generated/spanprofiling.ts,
 * and operator/test/api-types.test.ts fails when that file and the CRD drift.
 *
 * The mapping: required properties are required, everything else optional
 * (also with a default: the API server fills defaults, code that builds a
 * SpanProfiling need not); enums become unions of literals; int-or-string is
 * `number | string`; additionalProperties is a record; descriptions become
 * doc comments.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { parse } from 'yaml';

export const CRD_PATH = path.join(__dirname, '../../crds/spanprofiling.io_spanprofilings.yaml');
export const TYPES_PATH = path.join(__dirname, '../src/generated/spanprofiling.ts');

interface Schema {
  type?: string;
  description?: string;
  properties?: Record<string, Schema>;
  required?: string[];
  items?: Schema;
  additionalProperties?: Schema | boolean;
  enum?: unknown[];
  'x-kubernetes-int-or-string'?: boolean;
  'x-kubernetes-preserve-unknown-fields'?: boolean;
}

const IDENTIFIER = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

function doc(description: string | undefined, indent: string): string {
  if (description === undefined) return '';
  const text = description.trim().replace(/\*\//g, '*\\/');
  const lines = text.split('\n').map((l) => l.trimEnd());
  if (lines.length === 1) return `${indent}/** ${lines[0]} */\n`;
  return `${indent}/**\n${lines.map((l) => `${indent} *${l === '' ? '' : ` ${l}`}`).join('\n')}\n${indent} */\n`;
}

function typeOf(schema: Schema, indent: string): string {
  if (schema['x-kubernetes-int-or-string']) return 'number | string';
  if (schema.enum !== undefined) return schema.enum.map((v) => JSON.stringify(v)).join(' | ');
  switch (schema.type) {
    case 'string':
      return 'string';
    case 'integer':
    case 'number':
      return 'number';
    case 'boolean':
      return 'boolean';
    case 'array': {
      const item = typeOf(schema.items ?? {}, indent);
      return /[|&]/.test(item) ? `(${item})[]` : `${item}[]`;
    }
    case 'object': {
      if (schema.properties !== undefined) return objectType(schema, indent);
      if (typeof schema.additionalProperties === 'object') return `Record<string, ${typeOf(schema.additionalProperties, indent)}>`;
      return 'Record<string, unknown>';
    }
    default:
      return 'unknown';
  }
}

function objectType(schema: Schema, indent: string): string {
  const inner = `${indent}  `;
  const required = new Set(schema.required ?? []);
  const fields = Object.entries(schema.properties ?? {}).map(([name, s]) => {
    const key = IDENTIFIER.test(name) ? name : JSON.stringify(name);
    return `${doc(s.description, inner)}${inner}${key}${required.has(name) ? '' : '?'}: ${typeOf(s, inner)};\n`;
  });
  return `{\n${fields.join('')}${indent}}`;
}

export function generateTypes(crdYaml: string): string {
  const crd = parse(crdYaml) as { spec: { versions: { name: string; schema: { openAPIV3Schema: Schema } }[] } };
  const version = crd.spec.versions[0]!;
  const root = version.schema.openAPIV3Schema;
  const spec = root.properties?.['spec'];
  const status = root.properties?.['status'];
  if (spec === undefined || status === undefined) throw new Error('the CRD schema has no spec or status');
  return [
    `// Generated from crds/spanprofiling.io_spanprofilings.yaml (${version.name}) by operator/scripts/crd-types.ts.`,
    '// Do not edit: change the CRD, then run `npm run generate:api`.',
    '',
    `${doc(spec.description, '')}export interface SpanProfilingSpec ${objectType(spec, '')}`,
    '',
    `${doc(status.description, '')}export interface SpanProfilingStatus ${objectType(status, '')}`,
    '',
  ].join('\n');
}

if (require.main === module) {
  writeFileSync(TYPES_PATH, generateTypes(readFileSync(CRD_PATH, 'utf8')));
  console.log(`wrote ${path.relative(process.cwd(), TYPES_PATH)}`);
}
