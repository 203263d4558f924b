/** "Did you mean" for typo'd keys and enum values. */

/** Optimal-string-alignment distance: Levenshtein plus adjacent transpositions ("rnak" → "rank" is 1). */
export function editDistance(a: string, b: string): number {
  const rows = a.length + 1;
  const cols = b.length + 1;
  const d: number[] = new Array(rows * cols);
  for (let i = 0; i < rows; i++) d[i * cols] = i;
  for (let j = 0; j < cols; j++) d[j] = j;
  for (let i = 1; i < rows; i++) {
    for (let j = 1; j < cols; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[(i - 1) * cols + j] + 1, d[i * cols + j - 1] + 1, d[(i - 1) * cols + j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[(i - 2) * cols + j - 2] + 1);
      d[i * cols + j] = v;
    }
  }
  return d[rows * cols - 1];
}

// Case and separators are the commonest slips (learning_rate, Learning-Rate), so they cost nothing.
const fold = (s: string) => s.toLowerCase().replace(/[-_\s]/g, '');

/**
 * The candidate closest to `input`, if it is close enough to be a likely typo and no other candidate is as close
 * (a tie, like "int3" between int4 and int8, is a guess, so nothing is suggested).
 */
export function suggest(input: string, candidates: readonly string[]): string | undefined {
  const folded = fold(input);
  const exact = candidates.filter((c) => fold(c) === folded);
  if (exact.length === 1) return exact[0];
  const limit = folded.length <= 3 ? 1 : folded.length <= 6 ? 2 : 3;
  let best: string | undefined;
  let bestDist = Infinity;
  let tie = false;
  for (const c of candidates) {
    const dist = editDistance(folded, fold(c));
    if (dist < bestDist) [best, bestDist, tie] = [c, dist, false];
    else if (dist === bestDist) tie = true;
  }
  return best !== undefined && bestDist <= limit && !tie ? best : undefined;
}
