/**
 * onnx-compress validate [recipe]
 *
 * Checks a recipe (default ./compress.yaml) without compressing anything: schema, values, unsupported
 * features and that every referenced file exists. Prints "ok: N models, M builds" and exits 0, or throws
 * the recipe's errors (file:line:col each) and the CLI exits 2.
 */
import { CompressError } from '../errors.js';
import { loadRecipe } from '../recipe/index.js';

export async function run(args: string[]): Promise<number> {
  const positional = args.filter((a) => !a.startsWith('-'));
  const unknown = args.filter((a) => a.startsWith('-'));
  if (unknown.length) throw new CompressError('recipe', `unknown option ${unknown[0]}\nusage: onnx-compress validate [recipe]`);
  if (positional.length > 1) throw new CompressError('recipe', `expected one recipe, found ${positional.length}\nusage: onnx-compress validate [recipe]`);
  const recipe = await loadRecipe(positional[0] ?? 'compress.yaml', { checkFiles: true });
  const models = new Set(recipe.builds.map((b) => b.name)).size;
  const builds = recipe.builds.length;
  console.log(`ok: ${models} model${models === 1 ? '' : 's'}, ${builds} build${builds === 1 ? '' : 's'}`);
  return 0;
}
