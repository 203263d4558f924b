/**
 * The one include/exclude dialect of every step's recipe block (quantize, prune, lowrank):
 *
 *   "/encoder/*"     a glob over node names: `*` any run of characters (slashes too), `?` one character
 *   "op:MatMul"      a glob over op types: "op:Conv*" matches Conv and ConvTranspose
 *
 * A node is selected when no exclude pattern matches it and, if include is not empty, an include
 * pattern does. Nodes without a name are matched by the name the step shows for them (their weight's).
 */
import type { NodeProto } from '../onnx/types.js';

export interface Patterns {
  include: string[];
  exclude: string[];
}

const OP = 'op:';
const compiled = new Map<string, RegExp>();

function globRegExp(glob: string): RegExp {
  let re = compiled.get(glob);
  if (!re) {
    const body = glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*+/g, '.*').replace(/\?/g, '.');
    re = new RegExp(`^${body}$`);
    compiled.set(glob, re);
  }
  return re;
}

/** Whether a glob (`*` any run of characters, `?` one) matches the whole of `text`. */
export function globMatch(glob: string, text: string): boolean {
  return globRegExp(glob).test(text);
}

/** Whether one pattern matches a node; `name` is the name the step shows (default: the node's). */
export function matchesPattern(pattern: string, node: NodeProto, name = node.name ?? ''): boolean {
  return pattern.startsWith(OP) ? globMatch(pattern.slice(OP.length), node.opType ?? '') : globMatch(pattern, name);
}

/** Why include/exclude leave the node out ('not matched by include', 'excluded by "…"'), or undefined when selected. */
export function rejection(patterns: Patterns, node: NodeProto, name = node.name ?? ''): string | undefined {
  if (patterns.include.length && !patterns.include.some((p) => matchesPattern(p, node, name))) return 'not matched by include';
  const ex = patterns.exclude.find((p) => matchesPattern(p, node, name));
  return ex === undefined ? undefined : `excluded by "${ex}"`;
}

export function isSelected(patterns: Patterns, node: NodeProto, name = node.name ?? ''): boolean {
  return rejection(patterns, node, name) === undefined;
}

/** Whether an include pattern names the node itself (a name glob, not an `op:` pattern). */
export function namedByInclude(patterns: Patterns, name: string): boolean {
  return patterns.include.some((p) => !p.startsWith(OP) && globMatch(p, name));
}
