#!/usr/bin/env node
/**
 * onnx-compress: the command line. Each command lives in src/cli/<name>.ts and exports
 * `run(args: string[]): Promise<number>` (the exit code). Errors print one line; --debug adds the stack.
 * Exit codes: 0 ok, 1 a budget or compression check failed, 2 bad input (recipe, model, data, usage).
 */
import { CompressError } from './errors.js';

const commands: Record<string, { summary: string; load: () => Promise<{ run(args: string[]): Promise<number> }> }> = {
  build: { summary: 'build [recipe] [--out dir] [--no-cache] [--json]   compress the models of a recipe', load: () => import('./cli/build.js') },
  validate: { summary: 'validate [recipe]                                check a recipe without compressing', load: () => import('./cli/validate.js') },
  inspect: { summary: 'inspect <model.onnx> [--json]                    opsets, inputs/outputs, ops, weights', load: () => import('./cli/inspect.js') },
  repack: { summary: 'repack <in.onnx> <out.onnx> [--external-data[=file]] [--inline]   re-encode a model', load: () => import('./cli/repack.js') },
};

function usage(): string {
  return ['usage: onnx-compress <command> [options]', '', ...Object.values(commands).map((c) => `  ${c.summary}`), '', '  --debug   print stack traces'].join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const debug = argv.includes('--debug');
  const args = argv.filter((a) => a !== '--debug');
  const name = args[0];
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    console.log(usage());
    return name ? 0 : 2;
  }
  const command = commands[name];
  if (!command) {
    console.error(`onnx-compress: unknown command "${name}"\n${usage()}`);
    return 2;
  }
  try {
    return await (await command.load()).run(args.slice(1));
  } catch (e) {
    if (e instanceof CompressError) {
      console.error(`onnx-compress: ${debug ? e.stack : e.message}`);
      return e.exitCode;
    }
    console.error(`onnx-compress: internal error: ${debug ? (e as Error).stack : (e as Error).message}`);
    return 70;
  }
}

if (import.meta.url === `file://${process.argv[1]}` || process.argv[1]?.endsWith('/onnx-compress')) {
  main(process.argv.slice(2)).then((code) => process.exit(code));
}
