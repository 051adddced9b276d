/**
 * A span profile's flame graph as one self-contained HTML file: the page
 * (flamegraph-page.html: zoom, search, colours for the app's own functions)
 * with the tree inlined. It opens from disk and fetches nothing.
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import type { FlameNode } from './flame';

const PAGE = path.join(__dirname, 'flamegraph-page.html');

export interface FlamePage {
  title: string;
  /** Short lines shown under the title (span id, wall time, CPU). */
  facts: string[];
  /** Names of the app's own functions: drawn in warm colours, the rest muted. */
  app: readonly string[];
}

type Packed = [number, number, number, Packed[]];

/** The HTML of the page for this tree. */
export function flamegraphHtml(root: FlameNode, page: FlamePage): string {
  const names: string[] = [];
  const index = new Map<string, number>();
  const pack = (node: FlameNode): Packed => {
    let i = index.get(node.name);
    if (i === undefined) {
      i = names.push(node.name) - 1;
      index.set(node.name, i);
    }
    return [i, node.total, node.self, node.children.map(pack)];
  };
  const data = { title: page.title, facts: page.facts, app: page.app, names, root: pack(root) };
  // Inside <script>, "<" is written as \u003c so that no data can close the element.
  const json = JSON.stringify(data).replace(/</g, '\\u003c');
  const title = page.title.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
  return readFileSync(PAGE, 'utf8').replace('__TITLE__', () => title).replace('__DATA__', () => json);
}
