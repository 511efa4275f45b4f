/** snapctl tree: snapshots drawn as their parent/child forest. */
import type { Info } from '../../core/types';
import type { Command } from '../command';
import { json, wantsJson } from '../format';
import { parse, withClients } from './common';

export interface TreeNode {
  name: string;
  kind: Info['kind'];
  children: TreeNode[];
}

/**
 * Roots are snapshots without a parent, or whose parent is not in the list (a filter left it out); children
 * keep List's order, which is creation order.
 */
export function buildForest(infos: readonly Info[]): TreeNode[] {
  const nodes = new Map<string, TreeNode>();
  for (const i of infos) nodes.set(i.name, { name: i.name, kind: i.kind, children: [] });
  const roots: TreeNode[] = [];
  for (const i of infos) {
    const node = nodes.get(i.name)!;
    const parent = i.parent ? nodes.get(i.parent) : undefined;
    (parent ? parent.children : roots).push(node);
  }
  return roots;
}

export function drawForest(roots: readonly TreeNode[]): string {
  const out: string[] = [];
  const walk = (n: TreeNode, prefix: string, branch: string, last: boolean): void => {
    out.push(`${prefix}${branch}${n.name} (${n.kind})`);
    const childPrefix = branch === '' ? '' : prefix + (last ? '    ' : '│   ');
    n.children.forEach((c, i) => walk(c, childPrefix, i === n.children.length - 1 ? '└── ' : '├── ', i === n.children.length - 1));
  };
  for (const r of roots) walk(r, '', '', true);
  return out.length ? out.join('\n') + '\n' : '';
}

export const command: Command = {
  name: ['tree'],
  summary: 'show snapshots as a parent/child tree',
  usage: 'snapctl tree [--filter FILTER]... [--json]',
  async run(argv, io) {
    const { values } = parse(argv, { filter: { type: 'string', short: 'f', multiple: true } }, { min: 0, max: 0 });
    const infos = await withClients(io, (c) => c.snapshots.list(values.filter ?? []));
    const forest = buildForest(infos);
    io.stdout.write(wantsJson(io) ? json(forest) : drawForest(forest));
    return 0;
  },
};
