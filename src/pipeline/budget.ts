/**
 * Budgets, checked on every call (hit or miss: budgets are not part of the cache key). A violation is an
 * error pointing at the recipe's `budget` block, or with `onFail: warn` a warning in the manifest.
 */
import { CompressError } from '../errors.js';
import { positionOf } from '../recipe/index.js';
import type { Build } from '../recipe/types.js';
import type { EventBody } from './events.js';
import type { Manifest } from './manifest.js';
import { displayPath } from './present.js';

export async function applyBudget(
  build: Build,
  manifest: Manifest,
  opts: { budget?: 'error' | 'warn'; recipeFile?: string },
  emit: (e: EventBody) => void,
): Promise<void> {
  const budget = build.budget;
  if (!budget) return;
  const warn = (message: string) => {
    manifest.warnings.push(message);
    emit({ kind: 'warning', step: 'budget', message });
  };
  let violations: string[] = [];
  const bytes = manifest.output.bytes;
  const accuracyLimits = (['maxAccuracyDrop', 'minAgreement', 'minCosine'] as const).filter((k) => budget[k] !== undefined);
  if (accuracyLimits.length && !manifest.accuracy) warn(`budget ${accuracyLimits.join(', ')} not checked: the build has no evaluate data`);
  if (manifest.accuracy && accuracyLimits.length) {
    // Loaded only here: evaluate.ts pulls in onnxruntime, which a plain cache hit never loads.
    const { checkBudget } = await import('../eval/budget.js');
    violations = checkBudget(manifest.accuracy, budget, bytes).violations;
  } else if (budget.maxBytes !== undefined && bytes > budget.maxBytes) {
    violations.push(`size ${bytes} > maxBytes ${budget.maxBytes}`);
  }
  if (!violations.length) return;
  if ((opts.budget ?? budget.onFail) === 'warn') {
    for (const v of violations) warn(`budget: ${v}`);
    return;
  }
  throw new CompressError('budget', `${build.id}: over budget: ${violations.join('; ')}`, budgetLocation(build, opts.recipeFile));
}

function budgetLocation(build: Build, recipeFile: string | undefined): { file?: string; line?: number; column?: number } {
  if (!recipeFile) return {};
  try {
    const p = positionOf(build, 'budget');
    return { file: displayPath(recipeFile), line: p.line, column: p.column };
  } catch {
    return { file: displayPath(recipeFile) };
  }
}
