/**
 * ONNX INT4 / UINT4 packing: two 4-bit values per byte, element 2k in the LOW nibble and element
 * 2k+1 in the HIGH nibble. An odd count leaves the last byte's high nibble 0.
 *
 *   values [1, 2, 3]  →  bytes [0x21, 0x03]
 *
 * INT4 nibbles are two's complement (-8..7: -1 = 0xf, -8 = 0x8); UINT4 nibbles are 0..15.
 */

/** Packs 4-bit integers; throws RangeError naming the first index that is not an in-range integer. */
export function packInt4(values: Int8Array | ArrayLike<number>, signed: boolean): Uint8Array {
  const n = values.length;
  const lo = signed ? -8 : 0;
  const hi = signed ? 7 : 15;
  const out = new Uint8Array((n + 1) >>> 1);
  for (let i = 0; i < n; i++) {
    const v = values[i];
    if (!(v >= lo && v <= hi && Number.isInteger(v))) {
      throw new RangeError(`${signed ? 'int4' : 'uint4'} value ${v} at index ${i} is outside ${lo}..${hi}`);
    }
    // v & 0xf is the two's-complement nibble for negatives and the value itself otherwise.
    out[i >>> 1] |= (v & 0xf) << ((i & 1) << 2);
  }
  return out;
}

/** Unpacks `count` 4-bit integers; signed nibbles are sign-extended to -8..7. */
export function unpackInt4(bytes: Uint8Array, count: number, signed: boolean): Int8Array {
  if (!Number.isSafeInteger(count) || count < 0) throw new RangeError(`invalid element count ${count}`);
  const need = (count + 1) >>> 1;
  if (bytes.length < need) throw new RangeError(`${count} 4-bit values need ${need} bytes, got ${bytes.length}`);
  const out = new Int8Array(count);
  for (let i = 0; i < count; i++) {
    const nib = (bytes[i >>> 1] >>> ((i & 1) << 2)) & 0xf;
    // Sign-extend: move the nibble's bit 3 to bit 31, then arithmetic-shift back.
    out[i] = signed ? (nib << 28) >> 28 : nib;
  }
  return out;
}
