/**
 * resolveId and load, bundler-agnostic: turn import specifiers into our virtual ids, and virtual ids
 * into module code (delegating the URL to the bundler's AssetWriter).
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import type { AssetWriter } from './assets.js';
import { RESOLVED_ALL, VIRTUAL_ALL, isOwnId, moduleId, parseCompressImport, parseModuleId } from './ids.js';
import type { CompressedModels } from './models.js';
import { watchFilesOf } from './models.js';
import { summarize } from './summary.js';

/** Our id for `specifier`, or undefined when it is not ours (or its importer is excluded). */
export async function resolveImport(models: CompressedModels, specifier: string, importer: string | undefined): Promise<string | undefined> {
  if (specifier === VIRTUAL_ALL) return RESOLVED_ALL;
  if (isOwnId(specifier)) return specifier; // our modules importing each other
  const parsed = parseCompressImport(specifier);
  if (!parsed || !models.options.isImporterIncluded(importer)) return undefined;
  const file = resolveFile(parsed.path, importer, models.options.root);
  const build = await models.find(file, parsed.variant);
  return moduleId(parsed.kind, build.id);
}

/** An import path as a file: relative to the importer, root-relative (`/models/x.onnx`, as in Vite), absolute, or a package path. */
function resolveFile(spec: string, importer: string | undefined, root: string): string {
  const from = importer && path.isAbsolute(importer) && !importer.startsWith('\0') ? path.dirname(importer.split('?')[0]) : root;
  if (spec.startsWith('./') || spec.startsWith('../')) return path.resolve(from, spec);
  if (path.isAbsolute(spec)) return existsSync(spec) ? spec : path.join(root, spec);
  try {
    return createRequire(path.join(from, 'noop.js')).resolve(spec);
  } catch {
    return path.resolve(from, spec);
  }
}

export interface LoadContext {
  addWatchFile(file: string): void;
}

/** Module code for one of our ids. */
export async function loadModule(models: CompressedModels, assets: AssetWriter, ctx: LoadContext, id: string): Promise<string | undefined> {
  if (id === RESOLVED_ALL) {
    const builds = await models.builds();
    models.options.recipes.forEach((r) => ctx.addWatchFile(r));
    const imports = builds.map((b, i) => `import m${i} from ${JSON.stringify(moduleId('meta', b.id))};`);
    const entries = builds.map((b, i) => `  ${JSON.stringify(b.id)}: m${i},`);
    // The recipe's `pick` per model, over the plugin's variantOrder (one entry per model name).
    const perModel = Object.fromEntries(builds.flatMap((b) => (b.pick && b.variant === undefined ? [[b.name, b.pick]] : [])));
    const order = JSON.stringify({ order: models.options.variantOrder ?? {}, models: perModel });
    return [
      `import { createPicker, detectDevice } from ${JSON.stringify(moduleId('client', 'pick'))};`,
      ...imports,
      `const models = {\n${entries.join('\n')}\n};`,
      'export default models;',
      `export const pickVariant = createPicker(models, ${order});`,
      'export { detectDevice };',
      '',
    ].join('\n');
  }
  const parsed = parseModuleId(id);
  if (!parsed) return undefined;
  if (parsed.kind === 'client') return clientSource();
  const build = await models.byId(parsed.buildId);
  for (const f of [...models.options.recipes, ...watchFilesOf(build)]) ctx.addWatchFile(f);
  if (parsed.kind === 'url') return assets.urlModule(ctx, build);
  const { manifest } = await models.compress(build);
  const url = `import url from ${JSON.stringify(moduleId('url', build.id))};\n`;
  if (parsed.kind === 'manifest') return `${url}export default { url, manifest: ${JSON.stringify(manifest)} };\n`;
  return `${url}export default { url, ...${JSON.stringify(summarize(manifest))} };\n`;
}

/** client/pick.js, beside src/ and dist/ in the package (the same relative path from either). */
let client: string | undefined;
function clientSource(): string {
  client ??= readFileSync(new URL('../../client/pick.js', import.meta.url), 'utf8');
  return client;
}
