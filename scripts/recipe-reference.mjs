#!/usr/bin/env node
// Writes docs/recipe.md from schemas/compress.schema.json (the schema is the one source of the recipe's
// keys, defaults and descriptions; test/registry.test.ts keeps it in step with the step configs).
// Run after changing the schema: node scripts/recipe-reference.mjs
import { readFileSync, writeFileSync } from 'node:fs';

const schema = JSON.parse(readFileSync(new URL('../schemas/compress.schema.json', import.meta.url), 'utf8'));
const defs = schema.definitions;
const ref = (node) => (node?.$ref ? defs[node.$ref.split('/').pop()] : node);

function type(node) {
  const n = ref(node) ?? {};
  if (n.enum) return n.enum.map((v) => `\`${v}\``).join(' \\| ');
  if (n.const !== undefined) return `\`${n.const}\``;
  const alts = n.oneOf ?? n.anyOf;
  if (alts) return alts.map(type).join(' or ');
  if (n.type === 'array') return `list of ${type(n.items).replace(/ \\\| /g, '/')}`;
  if (n.type === 'object' && n.properties) return 'block (below)';
  if (n.type === 'object') return 'mapping';
  return Array.isArray(n.type) ? n.type.join(' or ') : (n.type ?? '');
}

function table(title, node) {
  const n = ref(node);
  const rows = Object.entries(n.properties ?? {}).map(([k, v]) => {
    const r = ref(v) ?? {};
    const dflt = v.default ?? r.default;
    const desc = (v.description ?? r.description ?? '').replace(/\|/g, '\\|').replace(/\n/g, ' ');
    return `| \`${k}\` | ${type(v)} | ${dflt === undefined ? '' : `\`${JSON.stringify(dflt)}\``} | ${desc} |`;
  });
  return [`## ${title}`, '', n.description ?? '', '', '| key | value | default | meaning |', '|---|---|---|---|', ...rows, ''].join('\n');
}

const out = [
  '# compress.yaml reference',
  '',
  'Generated from `schemas/compress.schema.json` by `node scripts/recipe-reference.mjs`; editors that read',
  'the `$schema` key show the same descriptions. A recipe has `defaults` (any model key, merged under every',
  'model) and `models`: a mapping from model name to a model block; a model may have `variants`, each a',
  'block of the same keys that overrides the model\'s.',
  '',
  table('Model', defs.model),
  table('Variant', defs.variant),
  ...['simplify', 'prune', 'lowrank', 'distill', 'quantize', 'calibration', 'evaluate', 'budget'].map((k) => table(`\`${k}\``, defs[k])),
].join('\n');
writeFileSync(new URL('../docs/recipe.md', import.meta.url), out);
console.log('wrote docs/recipe.md');
