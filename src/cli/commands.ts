/**
 * The commands of onnx-compress: what each accepts (parsed by args.ts, shown by --help) and where its
 * code is (loaded only when the command runs). Each module exports `run(args: ParsedArgs): Promise<number>`
 * (the exit code).
 */
import type { CommandSpec, ParsedArgs } from './args.js';
import { build, inspect, repack, validate } from './specs.js';

export { DEFAULT_OUT_DIR } from './specs.js';

export interface Command {
  spec: CommandSpec;
  load: () => Promise<{ run(args: ParsedArgs): Promise<number> }>;
}

export const COMMANDS: Record<string, Command> = {
  build: { spec: build, load: () => import('./build.js') },
  validate: { spec: validate, load: () => import('./validate.js') },
  inspect: { spec: inspect, load: () => import('./inspect.js') },
  repack: { spec: repack, load: () => import('./repack.js') },
};
