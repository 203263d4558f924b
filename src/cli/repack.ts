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
import { UsageError, type ParsedArgs } from './args.js';

export async function run(args: ParsedArgs): Promise<number> {
  const inline = args.options.inline === true;
  const external = args.options['external-data'] as boolean | string | undefined;
  if (typeof external === 'string' && (!external || external !== basename(external) || external === '.' || external === '..' || external.includes('\\'))) {
    throw new UsageError('repack', `--external-data takes a plain file name (written next to the output), not "${external}"`);
  }
  if (inline && external !== undefined) throw new UsageError('repack', '--inline and --external-data cannot be combined');
  const [input, output] = args.positionals;

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
