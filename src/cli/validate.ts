/**
 * onnx-compress validate [recipe]
 *
 * Checks a recipe (default ./compress.yaml) without compressing anything: schema, values, unsupported
 * features and that every referenced file exists. Prints "ok: N models, M builds" and exits 0, or throws
 * the recipe's errors (file:line:col each) and the CLI exits 2.
 */
import { loadRecipe } from '../recipe/index.js';
import type { ParsedArgs } from './args.js';

export async function run(args: ParsedArgs): Promise<number> {
  const recipe = await loadRecipe(args.positionals[0] ?? 'compress.yaml', { checkFiles: true });
  const models = new Set(recipe.builds.map((b) => b.name)).size;
  const builds = recipe.builds.length;
  console.log(`ok: ${models} model${models === 1 ? '' : 's'}, ${builds} build${builds === 1 ? '' : 's'}`);
  return 0;
}
