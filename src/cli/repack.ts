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
import { basename, dirname, join } from 'node:path';
import { DataLocation, externalDataFile, externalRef, loadExternalData } from '../onnx/external.js';
import { landingPath } from '../onnx/paths.js';
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
  const inputData = new Set<string>();
  forEachTensor(model, (t) => {
    if (t.dataLocation !== DataLocation.EXTERNAL) return;
    const { location } = externalRef(t, input);
    inputData.add(externalDataFile(dirname(input), location, input));
    inputData.add(landingPath(join(dirname(input), location))); // the name itself, when it is a symlink
  });
  const hadExternal = inputData.size > 0;

  const opts: WriteOptions = {};
  if (inline) opts.inline = true;
  else if (external !== undefined) opts.externalData = external;
  else if (hadExternal) opts.externalData = true;
  // Writing over the input in place is fine (it is all in memory by then); writing the model over the
  // input's data file, or the data file over the input model, would leave the input broken.
  const outModel = landingPath(output);
  const outData = opts.externalData ? landingPath(join(dirname(output), typeof opts.externalData === 'string' ? opts.externalData : `${basename(output)}.data`)) : undefined;
  if (inputData.has(outModel)) throw new UsageError('repack', `the output ${output} is the external data file of the input; choose another output`);
  if (outData && (outData === landingPath(input) || (inputData.has(outData) && outModel !== landingPath(input)))) {
    throw new UsageError('repack', `the output's data file ${outData} is one of the input's files; choose another output or --external-data name`);
  }
  if (hadExternal) loadExternalData(model, dirname(input), input);
  const result = writeModel(model, output, opts);

  let line = `wrote ${result.file} (${result.bytes} bytes)`;
  if (result.externalDataFile) line += ` + ${result.externalDataFile} (${result.externalDataBytes} bytes of external data)`;
  console.log(line);
  return 0;
}
