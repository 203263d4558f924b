/**
 * The simplify step: graph clean-up before the other steps (they see fewer nodes and plain weights).
 * Passes (one file each) run in rounds until a round changes nothing; each is Model → Model.
 *
 * Outputs never change beyond float rounding: the result runs next to the original in onnxruntime on
 * the verification feeds (check.ts, in the isolated child process). When they differ, or onnxruntime
 * crashes or hangs on the result, the passes are replayed one at a time with a check after each, and the
 * pass at fault is dropped (with a warning), or the build fails (`onMismatch: error`). An original that
 * crashes onnxruntime there fails the build as bad input.
 */
import { CompressError } from '../../errors.js';
import type { ModelProto } from '../../onnx/types.js';
import type { Step, StepContext, StepReport } from '../types.js';
import { OutputCheck, syntheticFeeds, type Feeds } from './check.js';
import { SIMPLIFY_DEFAULTS, SIMPLIFY_PASSES, type SimplifyPassName, type SimplifyStep } from './config.js';
import { constantsToInitializers } from './constants.js';
import { foldConvBatchNorm } from './convbn.js';
import { removeDeadNodes } from './dead.js';
import { shareDuplicates } from './dedupe.js';
import { foldConstants } from './fold.js';
import { matmulAddToGemm } from './gemm.js';
import { fuseGelu } from './gelu.js';
import { removeIdentities } from './identity.js';
import { fuseLayerNorm } from './layernorm.js';
import { encodedSize, nodeCount, type SimplifyPass } from './pass.js';

export { SIMPLIFY_DEFAULTS, SIMPLIFY_PASSES, type SimplifyStep, type SimplifyPassName } from './config.js';
export type { SimplifyPass, PassResult } from './pass.js';

export const PASSES: Record<SimplifyPassName, SimplifyPass> = {
  constants: constantsToInitializers,
  identity: removeIdentities,
  fold: foldConstants,
  'dead-code': removeDeadNodes,
  dedupe: shareDuplicates,
  'conv-bn': foldConvBatchNorm,
  gemm: matmulAddToGemm,
  layernorm: fuseLayerNorm,
  gelu: fuseGelu,
};

const MAX_ROUNDS = 4;

/**
 * Passes that only rename, share or drop without computing anything (Constant nodes as initializers,
 * Identity/Dropout bypassed, unread nodes removed, byte-identical initializers shared): their result
 * computes exactly what the input did, so they need no run in onnxruntime. Running the output check
 * for them alone cost a 113 MB model two full ORT loads (3.6 s of a 5.4 s build) to confirm a 31 kB saving.
 */
const EXACT_PASSES: ReadonlySet<SimplifyPassName> = new Set(['constants', 'identity', 'dead-code', 'dedupe']);

/** One application of a pass that changed the model. */
export interface PassRecord {
  pass: SimplifyPassName;
  round: number;
  changed: number;
  nodes: [before: number, after: number];
  bytes: [before: number, after: number];
  ms: number;
}

const modelBytes = encodedSize;

/**
 * Runs `passes` in rounds until one changes nothing. `accept` (when given) is asked after every pass
 * that changed the model; a pass it refuses is undone and not run again.
 */
export async function runPasses(
  model: ModelProto,
  passes: readonly SimplifyPassName[],
  accept?: (m: ModelProto, pass: SimplifyPassName) => Promise<boolean>,
): Promise<{ model: ModelProto; records: PassRecord[]; dropped: SimplifyPassName[] }> {
  const records: PassRecord[] = [];
  const dropped: SimplifyPassName[] = [];
  let current = model;
  let bytes = modelBytes(current);
  for (let round = 1; round <= MAX_ROUNDS; round++) {
    let changedThisRound = 0;
    for (const name of passes) {
      if (dropped.includes(name)) continue;
      const t = performance.now();
      const r = await PASSES[name].run(current);
      if (!r.changed) continue;
      if (accept && !(await accept(r.model, name))) {
        dropped.push(name);
        continue;
      }
      const after = modelBytes(r.model);
      records.push({ pass: name, round, changed: r.changed, nodes: [nodeCount(current), nodeCount(r.model)], bytes: [bytes, after], ms: Math.round((performance.now() - t) * 100) / 100 });
      current = r.model;
      bytes = after;
      changedThisRound += r.changed;
    }
    if (!changedThisRound) break;
  }
  return { model: current, records, dropped };
}

function feedsFor(model: ModelProto, ctx: StepContext): Feeds[] {
  const feeds: Feeds[] = (ctx.calibration ?? []).slice(0, 2).map((s) => s.feeds);
  for (const symbolic of [1, 3]) {
    const f = syntheticFeeds(model, symbolic, ctx.seed + symbolic);
    if (f) feeds.push(f);
  }
  return feeds;
}

/** The simplify step for a normalized recipe block. */
export function simplifyStep(params: SimplifyStep = SIMPLIFY_DEFAULTS): Step {
  return async (model: ModelProto, ctx: StepContext) => {
    const t0 = performance.now();
    const report: StepReport = { step: 'simplify', params: { ...params }, layers: [], skipped: [], warnings: [], ms: 0 };
    const passes = SIMPLIFY_PASSES.filter((p) => !params.skip.includes(p));
    const check = new OutputCheck(model, () => feedsFor(model, ctx), params.tolerance, ctx.file);
    let run = await runPasses(model, passes);
    let result = run.model;
    let maxRelDiff = 0;
    let noiseRelDiff: number | undefined;
    let checkedFeeds = 0;
    const numeric = run.records.some((r) => !EXACT_PASSES.has(r.pass));
    if (numeric) {
      const c = await check.check(result);
      if (c.failure) {
        if (params.onMismatch === 'error') {
          throw new CompressError('compress', c.crashed ? `simplify made a model onnxruntime cannot run: ${c.failure}` : `simplify changed the model's outputs: ${c.failure}`, { file: ctx.file });
        }
        // Replay with a check after every pass to find the ones at fault.
        ctx.log(`the simplified model's outputs differ (${c.failure}); checking pass by pass`);
        const reasons = new Map<SimplifyPassName, string>();
        run = await runPasses(model, passes, async (m, pass) => {
          const r = await check.check(m);
          if (r.failure) reasons.set(pass, r.failure);
          return !r.failure;
        });
        for (const pass of run.dropped) {
          const why = `pass ${pass} dropped: ${reasons.get(pass)}`;
          report.skipped.push({ name: pass, reason: reasons.get(pass) ?? 'outputs differ' });
          report.warnings.push(why);
        }
        result = run.model;
        const again = await check.check(result);
        if (again.failure) {
          // Passes that pass one by one but not together: keep the original.
          report.warnings.push(`simplification undone: ${again.failure}`);
          result = model;
          run = { model, records: [], dropped: run.dropped };
        }
        maxRelDiff = again.failure ? 0 : again.maxRelDiff;
        noiseRelDiff = again.failure ? undefined : again.noiseRelDiff;
        checkedFeeds = again.feeds;
      } else {
        maxRelDiff = c.maxRelDiff;
        noiseRelDiff = c.noiseRelDiff;
        checkedFeeds = c.feeds;
      }
      if (checkedFeeds === 0) report.warnings.push('outputs not checked: the original model runs on none of the verification feeds');
    }
    report.totals = {
      nodes: { before: nodeCount(model), after: nodeCount(result) },
      bytes: { before: modelBytes(model), after: modelBytes(result) },
      maxRelDiff,
      // Set when maxRelDiff is over the tolerance and was accepted as within the original's own rounding noise (check.ts).
      ...(noiseRelDiff !== undefined && { noiseRelDiff }),
      checkedFeeds,
      // 'exact': only passes that compute nothing changed the model, so there was nothing to run.
      check: numeric ? 'onnxruntime' : run.records.length ? 'exact' : 'unchanged',
      passes: run.records,
    };
    report.ms = performance.now() - t0;
    ctx.progress?.(1);
    return { model: result, report };
  };
}
