/**
 * The recipe's data blocks (`calibration`, `evaluate`, `distill`) checked against the model before any
 * work, and data errors located in the recipe: an unknown `carry` name, or random data missing a size in
 * `shapes`, point at the recipe's line:col, where the user fixes them.
 */
import { CompressError } from '../errors.js';
import type { InputSpec } from '../data/types.js';
import { positionOf } from '../recipe/index.js';
import type { Build, DataSpec } from '../recipe/types.js';
import { suggest } from '../suggest.js';
import { displayPath } from './present.js';

export type DataSection = 'calibration' | 'evaluate' | 'distill';

/** Where `key` of a build was written, as an error location (the recipe file alone when unknown). */
function locate(build: Build, key: string, recipeFile: string | undefined) {
  if (!recipeFile) return {};
  try {
    const p = positionOf(build, key);
    return { file: displayPath(recipeFile), line: p.line, column: p.column };
  } catch {
    return { file: displayPath(recipeFile) };
  }
}

const quoted = (names: string[]) => names.map((n) => `"${n}"`).join(', ');

/** Every `carry` of the build names an output and an input of the model; else a recipe error at that key. */
export function checkCarry(build: Build, inputs: InputSpec[], outputs: string[], recipeFile: string | undefined): void {
  const inputNames = inputs.map((i) => i.name);
  for (const section of ['calibration', 'evaluate'] as const) {
    const carry = build[section]?.carry ?? {};
    for (const [output, input] of Object.entries(carry)) {
      const key = `${section}.carry.${output}`;
      const unknown = (what: string, name: string, names: string[]) => {
        const hint = suggest(name, names);
        return new CompressError(
          'recipe',
          `${key}: "${name}" is not ${what} of the model${hint ? ` (did you mean "${hint}"?)` : ''}; its ${what === 'an output' ? 'outputs' : 'inputs'} are ${quoted(names)}`,
          locate(build, key, recipeFile),
        );
      };
      if (!outputs.includes(output)) throw unknown('an output', output, outputs);
      if (!inputNames.includes(input)) throw unknown('an input', input, inputNames);
    }
  }
}

/** Runs `load`; a data error without a file of its own (random data) is located at the section's data or shapes key. */
export async function locatedData<T>(build: Build, section: DataSection, spec: DataSpec | undefined, recipeFile: string | undefined, load: () => Promise<T>): Promise<T> {
  try {
    return await load();
  } catch (e) {
    if (!(e instanceof CompressError) || e.kind !== 'data' || e.location.file || !recipeFile) throw e;
    const prefix = section === 'distill' ? 'steps.distill' : section;
    const key = spec?.shapes && build.positions[`${prefix}.shapes`] ? `${prefix}.shapes` : `${prefix}.data`;
    const message = e.message.replace(/^random data: /, '');
    throw new CompressError('data', `${key.replace(/^steps\./, '')}: random data: ${message}`, locate(build, key, recipeFile), { cause: e });
  }
}
