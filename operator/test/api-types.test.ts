/**
 * One source per fact: the SpanProfiling types the code uses are generated
 * from the CRD, and this fails when the two drift.
 */
import { strict as assert } from 'node:assert';
import { readFileSync } from 'node:fs';
import { parse, stringify } from 'yaml';
import { CRD_PATH, generateTypes, TYPES_PATH } from '../scripts/crd-types';

describe('SpanProfiling types generated from the CRD', () => {
  const crd = readFileSync(CRD_PATH, 'utf8');

  it('are what the CRD says (after changing the CRD, run: npm run generate:api)', () => {
    assert.equal(readFileSync(TYPES_PATH, 'utf8'), generateTypes(crd), 'operator/src/generated/spanprofiling.ts is out of date: npm run generate:api');
  });

  it('follow a change of the CRD: a new field, a new enum value, a field made required', () => {
    const changed = parse(crd) as { spec: { versions: { schema: { openAPIV3Schema: { properties: { spec: { properties: Record<string, { properties?: Record<string, { enum?: string[] }>; required?: string[] }> } } } } }[] } };
    const spec = changed.spec.versions[0]!.schema.openAPIV3Schema.properties.spec.properties;
    spec['agent']!.properties!['nodeName'] = { type: 'string', description: 'A field added to the CRD.' } as never;
    spec['tracing']!.properties!['mode']!.enum!.push('both');
    spec['tracing']!.required = ['mode'];
    const out = generateTypes(stringify(changed));
    assert.match(out, /\/\*\* A field added to the CRD\. \*\/\n\s+nodeName\?: string;/);
    assert.match(out, /mode: "auto" \| "agent" \| "app" \| "both";/);
    assert.notEqual(out, generateTypes(crd));
  });

  it('map the schema as the code reads it: required, enums, int-or-string, maps, lists of objects', () => {
    const out = generateTypes(crd);
    assert.match(out, /export interface SpanProfilingSpec \{\n(.*\n)*?\s+pyroscope: \{\n(.*\n)*?\s+address: string;/);
    assert.match(out, /mode\?: "auto" \| "agent" \| "app";/);
    assert.match(out, /limits\?: Record<string, number \| string>;/);
    assert.match(out, /labels\?: Record<string, string>;/);
    assert.match(out, /status: "True" \| "False" \| "Unknown";/);
    assert.match(out, /propagators\?: \("tracecontext" \| "baggage" \| "b3" \| "b3multi" \| "jaeger" \| "none"\)\[\];/);
  });
});
