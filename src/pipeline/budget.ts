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
  throw new CompressError('budget', `${build.id}: over budget: ${violations.join('; ')}${searchNote(manifest)}`, budgetLocation(build, opts.recipeFile));
}

/** What the precision search tried, when it ran: the best assignment and its figures. */
function searchNote(manifest: Manifest): string {
  const s = manifest.steps.find((r) => r.step === 'quantize')?.totals?.search as
    | { met: boolean; samples: number; chosen: number; figure: string; points: { label: string; bytes: number; damage: number; [k: string]: unknown }[]; assignment: Record<string, string> }
    | undefined;
  if (!s || !s.points.length) return '';
  const p = s.points[s.chosen];
  const counts = new Map<string, number>();
  for (const v of Object.values(s.assignment)) counts.set(v, (counts.get(v) ?? 0) + 1);
  const mix = counts.size ? [...counts].map(([k, n]) => `${k} ×${n}`).join(', ') : p.label;
  const fig = typeof p[s.figure] === 'number' ? `, ${s.figure} ${(p[s.figure] as number).toPrecision(4)}` : '';
  const head = s.met
    ? `the precision search's choice met the budget on its ${s.samples} search samples but not on the evaluation data`
    : `no precision assignment the search measured (${s.points.length}) meets the budget on its ${s.samples} search samples`;
  return `. ${head}; best: ${mix} (${p.label}), about ${p.bytes} bytes${fig}`;
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
