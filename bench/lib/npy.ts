/**
 * Writes NumPy .npy files (format 1.0, C order, little-endian), so benches can hand the CLI real data
 * in a format its loader reads (docs/data.md): a folder of `<input>.npy` plus `labels.npy`.
 */
import { writeFileSync } from 'node:fs';

const DESCR = new Map<unknown, string>([
  [Float32Array, '<f4'],
  [Uint8Array, '|u1'],
  [Int32Array, '<i4'],
  [BigInt64Array, '<i8'],
]);

export function npyBytes(data: Float32Array | Uint8Array | Int32Array | BigInt64Array, shape: readonly number[]): Uint8Array {
  const descr = DESCR.get(data.constructor);
  if (!descr) throw new Error(`npy: no dtype for ${data.constructor.name}`);
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': (${shape.join(', ')}${shape.length === 1 ? ',' : ''}), }`;
  // Magic (6) + version (2) + header length (2) + header + '\n', padded to a multiple of 64.
  const total = Math.ceil((10 + header.length + 1) / 64) * 64;
  header = header.padEnd(total - 10 - 1, ' ') + '\n';
  const out = new Uint8Array(total + data.byteLength);
  out.set([0x93, ...Buffer.from('NUMPY'), 1, 0, header.length & 0xff, header.length >> 8]);
  out.set(Buffer.from(header, 'latin1'), 10);
  out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), total);
  return out;
}

export function writeNpy(file: string, data: Float32Array | Uint8Array | Int32Array | BigInt64Array, shape: readonly number[]): void {
  writeFileSync(file, npyBytes(data, shape));
}
