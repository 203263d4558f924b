/**
 * Import specifiers the plugin answers, and the module ids it resolves them to.
 *
 *   './m.onnx?compress'          → the URL of the compressed model (the recipe's main build of m.onnx)
 *   './m.onnx?compress=q4'       → the URL of its variant q4
 *   './m.onnx?compress&meta'     → a small ModelSummary { url, id, bytes, precision, fidelity, budget, … }
 *                                  (also with `=q4`; parameters in any order)
 *   './m.onnx?compress&manifest' → { url, manifest }: the whole manifest (per-layer tables: tens of kB)
 *   'virtual:onnx-compress'      → { [build id]: ModelSummary } for every build of every recipe, and
 *                                  `pickVariant(name)`, which picks a build for the browser's device
 *
 * Resolved ids are `\0`-prefixed virtual ids keyed by the recipe build id, so no other plugin (Vite's
 * asset handling, a JSON loader) touches them, and every import of the same build is one module:
 *
 *   \0onnx-compress:url:<build id>        `export default <url>`
 *   \0onnx-compress:meta:<build id>       `import url from <url module>; export default { url, ...summary }`
 *   \0onnx-compress:manifest:<build id>   `import url from <url module>; export default { url, manifest }`
 *   \0onnx-compress:client:pick           the device-picking helper (client/pick.js)
 *   \0virtual:onnx-compress               imports every meta module and the helper
 */
import { CompressError } from '../errors.js';
import { suggest } from '../suggest.js';

export const VIRTUAL_ALL = 'virtual:onnx-compress';
export const RESOLVED_ALL = '\0virtual:onnx-compress';
const PREFIX = '\0onnx-compress:';

export interface CompressImport {
  /** The import path without its query (relative to the importer, or absolute). */
  path: string;
  /** Variant name from `?compress=<variant>`; absent for the main build. */
  variant?: string;
  /** What the import's default export is: the URL, a small summary (`&meta`) or the whole manifest (`&manifest`). */
  kind: 'url' | 'meta' | 'manifest';
}

/** Query parameters of a `?compress` import; `import`, `t` and `v` are what Vite's dev server appends. */
const KNOWN_PARAMS = ['compress', 'meta', 'manifest'];
const BUNDLER_PARAMS = ['import', 't', 'v'];

/**
 * The parts of a `?compress` import, or undefined when the specifier is not one. An unknown parameter
 * (`?compress&dtype=int8`) is an error: silently ignoring it would hand the app a model it did not ask for.
 */
export function parseCompressImport(specifier: string): CompressImport | undefined {
  const q = specifier.indexOf('?');
  if (q < 0) return undefined;
  const params = new URLSearchParams(specifier.slice(q + 1));
  if (!params.has('compress')) return undefined;
  const path = specifier.slice(0, q);
  for (const key of params.keys()) {
    if (KNOWN_PARAMS.includes(key) || BUNDLER_PARAMS.includes(key)) continue;
    const near = suggest(key, KNOWN_PARAMS);
    const hint = near ? ` (did you mean "${near}"?)` : key === 'dtype' || key === 'quantize' ? ' (precision is set in the recipe: add a variant and import it as ?compress=<variant>)' : '';
    throw new CompressError('recipe', `${specifier}: unknown import parameter "${key}"${hint}; known: ?compress, ?compress=<variant>, &meta, &manifest`);
  }
  if (params.has('meta') && params.has('manifest')) throw new CompressError('recipe', `${specifier}: &meta and &manifest cannot be combined (&manifest includes the summary's url)`);
  const variant = params.get('compress') || undefined;
  return { path, variant, kind: params.has('manifest') ? 'manifest' : params.has('meta') ? 'meta' : 'url' };
}

export type ModuleKind = 'url' | 'meta' | 'manifest' | 'client';

export function moduleId(kind: ModuleKind, buildId: string): string {
  return `${PREFIX}${kind}:${buildId}`;
}

/** The kind and build id of one of our resolved ids, or undefined. */
export function parseModuleId(id: string): { kind: ModuleKind; buildId: string } | undefined {
  if (!id.startsWith(PREFIX)) return undefined;
  const rest = id.slice(PREFIX.length);
  const colon = rest.indexOf(':');
  const kind = rest.slice(0, colon);
  if (kind !== 'url' && kind !== 'meta' && kind !== 'manifest' && kind !== 'client') return undefined;
  return { kind, buildId: rest.slice(colon + 1) };
}

export function isOwnId(id: string): boolean {
  return id === RESOLVED_ALL || id.startsWith(PREFIX);
}

/** Some bundlers (webpack's virtual modules) hand ids back URI-encoded. */
export function decodeId(id: string): string {
  return id.includes('%00') ? decodeURIComponent(id) : id;
}
