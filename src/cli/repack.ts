/**
 * onnx-compress repack <in.onnx> <out.onnx> [--external-data[=file]] [--inline]
 *
 * Decodes and re-encodes a model. External data of the input is loaded (relative to the input's folder).
 * - no flag: same layout as the input: inline stays inline (byte-identical for a canonically encoded
 *   file); a model that had external data gets it again, in `<out>.data`.
 * - --external-data[=file]: tensors of at least 1 KB move to `<out>.data` (or `file`, a plain file name
 *   written next to out), 4096-aligned.
 * - --inline: every tensor goes back into the .onnx file.
 */
import { basename, dirname } from 'node:path';
import { DataLocation, loadExternalData } from '../onnx/external.js';
import { readModel, writeModel, type WriteOptions } from '../onnx/io.js';
import { forEachTensor } from '../onnx/walk.js';

const USAGE = 'usage: onnx-compress repack <in.onnx> <out.onnx> [--external-data[=file]] [--inline]';

function usageError(message: string): number {
  console.error(`onnx-compress repack: ${message}\n${USAGE}`);
  return 2;
}

export async function run(args: string[]): Promise<number> {
  const files: string[] = [];
  let external: boolean | string | undefined;
  let inline = false;
  for (const a of args) {
    if (a === '--help' || a === '-h') {
      console.log(USAGE);
      return 0;
    } else if (a === '--inline') inline = true;
    else if (a === '--external-data') external = true;
    else if (a.startsWith('--external-data=')) {
      const name = a.slice('--external-data='.length);
      if (!name || name !== basename(name) || name === '.' || name === '..' || name.includes('\\')) {
        return usageError(`--external-data takes a plain file name (written next to the output), not "${name}"`);
      }
      external = name;
    } else if (a.startsWith('-') && a !== '-') return usageError(`unknown option "${a}"`);
    else files.push(a);
  }
  if (files.length < 2) return usageError(files.length === 0 ? 'missing the input and output files' : 'missing the output file');
  if (files.length > 2) return usageError(`unexpected argument "${files[2]}"`);
  if (inline && external !== undefined) return usageError('--inline and --external-data cannot be combined');
  const [input, output] = files;

  // readModel would load external data too; reading it in two steps tells whether the input had any.
  const model = readModel(input, { externalData: false });
  let hadExternal = false;
  forEachTensor(model, (t) => {
    if (t.dataLocation === DataLocation.EXTERNAL) hadExternal = true;
  });
  if (hadExternal) loadExternalData(model, dirname(input), input);

  const opts: WriteOptions = {};
  if (inline) opts.inline = true;
  else if (external !== undefined) opts.externalData = external;
  else if (hadExternal) opts.externalData = true;
  const result = writeModel(model, output, opts);

  let line = `wrote ${result.file} (${result.bytes} bytes)`;
  if (result.externalDataFile) line += ` + ${result.externalDataFile} (${result.externalDataBytes} bytes of external data)`;
  console.log(line);
  return 0;
}
