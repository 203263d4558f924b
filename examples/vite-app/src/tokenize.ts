/**
 * The spam model's byte tokenizer: UTF-8 bytes of the e-mail body, the first 127 kept;
 * ids = [1 (CLS)] + [byte + 2 …], right-padded with 0 to 128. The logits come from the CLS position.
 */
export const SEQ_LEN = 128;

export function tokenize(body: string): BigInt64Array {
  const bytes = new TextEncoder().encode(body).subarray(0, SEQ_LEN - 1);
  const ids = new BigInt64Array(SEQ_LEN); // 0 = pad
  ids[0] = 1n;
  bytes.forEach((b, i) => (ids[i + 1] = BigInt(b + 2)));
  return ids;
}

/** P(spam) from the two logits [ham, spam] (a numerically stable two-way softmax). */
export function spamProbability(logits: ArrayLike<number>): number {
  return 1 / (1 + Math.exp(logits[0] - logits[1]));
}
