/**
 * The data formats and the file extensions that select them: the one list that both the recipe
 * validator and the loader read, so a `data` path the recipe accepts always has a reader. Kept free of
 * runtime imports: validating a recipe loads this file without onnxruntime.
 */
export const DATA_FORMATS = {
  jsonl: ['.jsonl', '.ndjson'],
  npy: ['.npy'],
  npz: ['.npz'],
  module: ['.js', '.mjs', '.cjs', '.ts', '.mts', '.cts'],
} as const satisfies Record<string, readonly string[]>;

export type DataFormat = keyof typeof DATA_FORMATS;

/** Every file type a `data` path may name (a folder of .npy files and 'random' are accepted too). */
export const dataExtensions: readonly string[] = Object.values(DATA_FORMATS).flat();

/** The format a file extension (with its dot, any case) selects. */
export function dataFormatOf(ext: string): DataFormat | undefined {
  const e = ext.toLowerCase();
  return (Object.keys(DATA_FORMATS) as DataFormat[]).find((f) => (DATA_FORMATS[f] as readonly string[]).includes(e));
}
