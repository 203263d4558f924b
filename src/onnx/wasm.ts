/**
 * WebAssembly SIMD kernels: a compiled module (from a .wat file, see scripts/wasm.mjs) and instances of
 * it whose memory holds the data of one call.
 *
 * One instance is kept per thread for calls whose data fits in `KEEP_BYTES`; a larger call gets an
 * instance of its own that is garbage once the call returns (a WebAssembly memory never shrinks, and a
 * dev server should not hold a big weight's worth of it). `instance` answers undefined where WebAssembly
 * SIMD is missing, ONNX_COMPRESS_SIMD=0 is set, or the data would not fit a 32-bit memory: the caller
 * then runs its scalar JS kernel.
 */

/** Calls with data up to this size use the thread's kept instance. */
const KEEP_BYTES = 64 * 2 ** 20;
/** Past this, the scalar kernels run (a 32-bit memory holds 4 GiB; leave room). */
const MAX_BYTES = 3 * 2 ** 30;
const PAGE = 65536;

export interface WasmKernel<E> {
  /** Exports of an instance whose memory holds at least `bytes`, or undefined (see above). */
  instance(bytes: number): (E & { memory: WebAssembly.Memory }) | undefined;
}

export function wasmKernel<E>(base64: string): WasmKernel<E> {
  let module: WebAssembly.Module | null | undefined;
  let kept: (E & { memory: WebAssembly.Memory }) | undefined;
  const compiled = (): WebAssembly.Module | null => {
    if (module !== undefined) return module;
    const bytes = Buffer.from(base64, 'base64');
    const on = process.env.ONNX_COMPRESS_SIMD !== '0' && typeof WebAssembly === 'object' && WebAssembly.validate(bytes);
    return (module = on ? new WebAssembly.Module(bytes) : null);
  };
  return {
    instance(bytes) {
      const m = compiled();
      if (!m || bytes > MAX_BYTES) return undefined;
      const keep = bytes <= KEEP_BYTES;
      const k = (keep && kept) || (new WebAssembly.Instance(m).exports as unknown as E & { memory: WebAssembly.Memory });
      if (keep) kept = k;
      const have = k.memory.buffer.byteLength;
      try {
        if (have < bytes) k.memory.grow(Math.ceil((bytes - have) / PAGE));
      } catch {
        return undefined; // the engine or the machine would not give that much: the scalar kernel runs
      }
      return k;
    },
  };
}

/** Offsets of consecutive regions of the given sizes, each 16-byte aligned, and where they end. */
export function regions(...sizes: number[]): { at: number[]; end: number } {
  const at: number[] = [];
  let end = 0;
  for (const s of sizes) {
    at.push(end);
    end += Math.ceil(s / 16) * 16;
  }
  return { at, end };
}
