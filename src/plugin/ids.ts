/**
 * Import specifiers the plugin answers, and the module ids it resolves them to.
 *
 *   './m.onnx?compress'          → the URL of the compressed model (the recipe's main build of m.onnx)
 *   './m.onnx?compress=q4'       → the URL of its variant q4
 *   './m.onnx?compress&meta'     → { url, manifest } (also with `=q4`; parameters in any order)
 *   'virtual:onnx-compress'      → { [build id]: { url, manifest } } for every build of every recipe
 *
 * Resolved ids are `\0`-prefixed virtual ids keyed by the recipe build id, so no other plugin (Vite's
 * asset handling, a JSON loader) touches them, and every import of the same build is one module:
 *
 *   \0onnx-compress:url:<build id>    `export default <url>`
 *   \0onnx-compress:meta:<build id>   `import url from <url module>; export default { url, manifest }`
 *   \0virtual:onnx-compress           imports every meta module
 */
export const VIRTUAL_ALL = 'virtual:onnx-compress';
export const RESOLVED_ALL = '\0virtual:onnx-compress';
const PREFIX = '\0onnx-compress:';

export interface CompressImport {
  /** The import path without its query (relative to the importer, or absolute). */
  path: string;
  /** Variant name from `?compress=<variant>`; absent for the main build. */
  variant?: string;
  meta: boolean;
}

/** The parts of a `?compress` import, or undefined when the specifier is not one. */
export function parseCompressImport(specifier: string): CompressImport | undefined {
  const q = specifier.indexOf('?');
  if (q < 0) return undefined;
  const params = new URLSearchParams(specifier.slice(q + 1));
  if (!params.has('compress')) return undefined;
  const variant = params.get('compress') || undefined;
  return { path: specifier.slice(0, q), variant, meta: params.has('meta') };
}

export type ModuleKind = 'url' | 'meta';

export function moduleId(kind: ModuleKind, buildId: string): string {
  return `${PREFIX}${kind}:${buildId}`;
}

/** The kind and build id of one of our resolved ids, or undefined. */
export function parseModuleId(id: string): { kind: ModuleKind; buildId: string } | undefined {
  if (!id.startsWith(PREFIX)) return undefined;
  const rest = id.slice(PREFIX.length);
  const colon = rest.indexOf(':');
  const kind = rest.slice(0, colon);
  if (kind !== 'url' && kind !== 'meta') return undefined;
  return { kind, buildId: rest.slice(colon + 1) };
}

export function isOwnId(id: string): boolean {
  return id === RESOLVED_ALL || id.startsWith(PREFIX);
}

/** Some bundlers (webpack's virtual modules) hand ids back URI-encoded. */
export function decodeId(id: string): string {
  return id.includes('%00') ? decodeURIComponent(id) : id;
}
