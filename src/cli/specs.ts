/**
 * What each command of onnx-compress accepts: parsed by args.ts, shown by --help. Plain data, so a
 * command module can read its own spec without importing the command table (commands.ts).
 */
import type { CommandSpec } from './args.js';
import { DEVICES } from '../device.js';

export const DEFAULT_OUT_DIR = 'dist/onnx';

export const build: CommandSpec = {
  name: 'build',
  summary: 'compress the models of a recipe',
  synopsis: '[recipe] [options]',
  description: [
    'Compresses every build of the recipe (default ./compress.yaml) and writes <out>/<output> and',
    '<out>/<id>.manifest.json for each, then onnx-compress.json and onnx-compress-report.html (the HTML',
    'report) for all. Builds that succeed are written even when others fail.',
    'Exit: 0 all ok, 1 a budget or compression check failed, 2 bad input (recipe, model, data, usage).',
  ].join('\n'),
  positionals: [{ name: 'recipe', required: false }],
  options: [
    { name: 'out', short: 'o', value: 'dir', help: `where outputs and manifests go (default ${DEFAULT_OUT_DIR})` },
    { name: 'report-dir', value: 'dir', help: 'where manifests, onnx-compress.json and the HTML report go (default: --out); keeps them out of a deployed folder' },
    { name: 'no-cache', help: 'compress everything again, and store nothing in the cache' },
    { name: 'cache-dir', value: 'dir', help: 'the cache folder (default node_modules/.cache/onnx-compress)' },
    { name: 'device', value: 'device', choices: [...DEVICES], help: "device that verifies and evaluates (default: the recipe's)" },
    { name: 'concurrency', short: 'j', value: 'n', positiveInteger: true, help: 'builds compressed at once (default: half the cores)' },
    { name: 'budget', value: 'mode', choices: ['error', 'warn'], help: "what a missed budget does (default: the recipe's onFail)" },
    { name: 'json', help: 'print a JSON summary on stdout instead of the table' },
    { name: 'quiet', short: 'q', help: 'print only warnings and errors' },
    { name: 'verbose', help: "also print each step's time and the steps' messages" },
  ],
};

export const validate: CommandSpec = {
  name: 'validate',
  summary: 'check a recipe without compressing',
  synopsis: '[recipe]',
  description: [
    'Checks a recipe (default ./compress.yaml) without compressing anything: schema, values, unsupported',
    'features and that every referenced file exists. Prints "ok: N models, M builds", or the errors with',
    'file:line:col each (exit 2).',
  ].join('\n'),
  positionals: [{ name: 'recipe', required: false }],
  options: [],
};

export const inspect: CommandSpec = {
  name: 'inspect',
  summary: 'opsets, inputs/outputs, ops, weights of a model',
  synopsis: '<model.onnx> [--json]',
  description: 'Describes a model: opsets, inputs and outputs, op counts, weights by type and location. External tensors are described, not loaded.',
  positionals: [{ name: 'the model file', required: true }],
  options: [{ name: 'json', help: 'print one JSON object instead of the report' }],
};

export const repack: CommandSpec = {
  name: 'repack',
  summary: 're-encode a model (external data in or out)',
  synopsis: '<in.onnx> <out.onnx> [--external-data[=file] | --inline]',
  description: [
    'Decodes and re-encodes a model; external data of the input is loaded. With no option the layout is',
    'kept: inline stays inline (byte-identical for a canonically encoded file), external data goes to',
    '<out>.data.',
  ].join('\n'),
  positionals: [
    { name: 'the input file', required: true },
    { name: 'the output file', required: true },
  ],
  options: [
    { name: 'external-data', value: 'file', optionalValue: true, help: 'move tensors of 1 KB or more to <out>.data (or file, next to out), 4096-aligned' },
    { name: 'inline', help: 'put every tensor back into the .onnx file' },
  ],
};

