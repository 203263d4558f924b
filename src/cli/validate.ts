/**
 * onnx-compress validate [recipe]
 *
 * Checks a recipe (default ./compress.yaml) without compressing anything: schema, values, unsupported
 * features and that every referenced file exists; then that each source (and distillation teacher)
 * is an ONNX model that decodes, and that each data file's first samples match the inputs of the model
 * they feed. Prints "ok: N models, M builds" and exits 0, or the first error (file:line:col for the
 * recipe, byte offset for a model, line or sample for data) and the CLI exits 2.
 */
import { readModel } from '../onnx/io.js';
import type { ModelProto } from '../onnx/types.js';
import { loadRecipe } from '../recipe/index.js';
import type { ParsedArgs } from './args.js';

/** Samples read from each data file: enough to check names, types and shapes, not the whole set. */
const SAMPLES_CHECKED = 2;

export async function run(args: ParsedArgs): Promise<number> {
  const recipe = await loadRecipe(args.positionals[0] ?? 'compress.yaml', { checkFiles: true });
  const models = new Map<string, ModelProto>();
  const modelOf = (file: string) => {
    let m = models.get(file);
    if (!m) models.set(file, (m = readModel(file, { externalData: false })));
    return m;
  };
  const checked = new Set<string>();
  for (const b of recipe.builds) {
    const source = modelOf(b.source);
    const teacher = b.steps.distill?.teacher;
    if (teacher && teacher !== 'original') modelOf(teacher);
    const data = [b.calibration, b.evaluate, b.steps.distill && { data: b.steps.distill.data }].filter((d) => d && d.data !== 'random');
    if (data.length === 0) continue;
    // onnxruntime (for the inputs' element types) only when there is data to check.
    const { inputSpecs } = await import('../runtime/session.js');
    const { loadSamples } = await import('../data/load.js');
    for (const spec of data) {
      const key = `${b.source}\n${spec!.data}`;
      if (checked.has(key)) continue;
      checked.add(key);
      const labelKey = spec === b.evaluate ? b.evaluate?.labelKey : undefined;
      await loadSamples({ data: spec!.data }, inputSpecs(source), { recipeFile: recipe.file, limit: SAMPLES_CHECKED, ...(labelKey && { labelKey }) });
    }
  }
  const names = new Set(recipe.builds.map((b) => b.name)).size;
  const builds = recipe.builds.length;
  console.log(`ok: ${names} model${names === 1 ? '' : 's'}, ${builds} build${builds === 1 ? '' : 's'}`);
  return 0;
}
