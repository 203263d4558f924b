/**
 * Loaders for the two fixture datasets (test/fixtures/README.md), as Samples for tests and benches:
 * - spam-tinybert: `test-split.json` {input_ids: number[N][128], labels: number[N]} → input_ids int64 [1, 128].
 * - fmnist-cnn: Fashion-MNIST IDX files (gzip) → image float32 [1, 1, 28, 28] = pixel / 255.
 */
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { Tensor } from 'onnxruntime-node';
import { CompressError } from '../../src/errors.js';
import type { Sample } from '../../src/data/types.js';

export const SPAM_SEQ_LEN = 128;

function read(file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (e) {
    throw new CompressError('io', `cannot read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { file });
  }
}

/** The spam model's 1,000 held-out e-mails, each `input_ids` int64 [1, 128] with its label (1 = spam). */
export function loadSpamTestSet(file: string, limit = Infinity): Sample[] {
  let json: { input_ids?: unknown; labels?: unknown };
  try {
    json = JSON.parse(read(file).toString('utf8'));
  } catch (e) {
    if (e instanceof CompressError) throw e;
    throw new CompressError('data', `invalid JSON: ${(e as Error).message}`, { file });
  }
  const ids = json.input_ids;
  const labels = json.labels;
  if (!Array.isArray(ids) || !Array.isArray(labels) || ids.length !== labels.length) {
    throw new CompressError('data', 'expected {input_ids: number[N][128], labels: number[N]}', { file });
  }
  const n = Math.min(ids.length, limit);
  const out: Sample[] = [];
  for (let i = 0; i < n; i++) {
    const row = ids[i] as number[];
    if (!Array.isArray(row) || row.length !== SPAM_SEQ_LEN) throw new CompressError('data', `sample ${i + 1}: input_ids must have ${SPAM_SEQ_LEN} ids`, { file });
    const data = new BigInt64Array(SPAM_SEQ_LEN);
    for (let j = 0; j < SPAM_SEQ_LEN; j++) data[j] = BigInt(row[j]);
    out.push({ feeds: { input_ids: new Tensor('int64', data, [1, SPAM_SEQ_LEN]) }, label: Number(labels[i]) });
  }
  return out;
}

/**
 * The spam model's tokenizer: the body (text after the first blank line, "\n\n"; the whole text when
 * there is none), UTF-8, first 127 bytes; ids = [1] + [byte + 2 …], padded with 0 to 128.
 */
export function spamTokenize(text: string): BigInt64Array {
  const at = text.indexOf('\n\n');
  const body = at >= 0 ? text.slice(at + 2) : text;
  const bytes = Buffer.from(body, 'utf8').subarray(0, SPAM_SEQ_LEN - 1);
  const ids = new BigInt64Array(SPAM_SEQ_LEN);
  ids[0] = 1n;
  for (let i = 0; i < bytes.length; i++) ids[i + 1] = BigInt(bytes[i] + 2);
  return ids;
}

function idx(file: string, magic: number): { data: Buffer; dims: number[] } {
  const buf = gunzipSync(read(file));
  if (buf.length < 8 || buf.readUInt32BE(0) !== magic) {
    throw new CompressError('data', `not an IDX file of type 0x${magic.toString(16).padStart(8, '0')}`, { file, offset: 0 });
  }
  const rank = magic & 0xff;
  const dims: number[] = [];
  for (let i = 0; i < rank; i++) dims.push(buf.readUInt32BE(4 + 4 * i));
  return { data: buf.subarray(4 + 4 * rank), dims };
}

/** Fashion-MNIST test images as `image` float32 [1, 1, 28, 28] (pixel / 255) with class labels 0–9. */
export function loadFashionMnist(imagesGz: string, labelsGz: string, limit = Infinity): Sample[] {
  const images = idx(imagesGz, 0x00000803);
  const labels = idx(labelsGz, 0x00000801);
  const [n, rows, cols] = images.dims;
  if (labels.dims[0] !== n) throw new CompressError('data', `${labels.dims[0]} labels for ${n} images`, { file: labelsGz });
  const count = Math.min(n, limit);
  const per = rows * cols;
  // One buffer for all images; each sample's tensor is a view into it.
  const all = new Float32Array(count * per);
  for (let i = 0; i < count * per; i++) all[i] = images.data[i] / 255;
  const out: Sample[] = [];
  for (let i = 0; i < count; i++) {
    out.push({ feeds: { image: new Tensor('float32', all.subarray(i * per, (i + 1) * per), [1, 1, rows, cols]) }, label: labels.data[i] });
  }
  return out;
}
