/**
 * onnx-compress: the command line (entered through src/cli.ts). Commands are declared in src/cli/commands.ts (options, help) and
 * live in src/cli/<name>.ts; every command's arguments go through one parser (src/cli/args.ts).
 * Errors print one line; --debug adds the stack. Usage mistakes print
 * `onnx-compress <command>: <message>`, the usage line and a pointer to --help.
 * Exit codes: 0 ok, 1 a budget or compression check failed, 2 bad input (recipe, model, data, usage).
 */
import { helpText, parseArgs, UsageError, usageErrorText } from './args.js';
import { COMMANDS } from './commands.js';
import { commandFinished, installExitGuard } from './exit-guard.js';
import { CompressError } from '../errors.js';
import { cliFlags } from '../activity.js';
import { describeThrown } from '../limits.js';
import { TOOL_NAME, version } from '../version.js';

function overview(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((n) => n.length));
  return [
    'usage: onnx-compress <command> [options]',
    '',
    'commands:',
    ...Object.values(COMMANDS).map(({ spec }) => `  ${spec.name.padEnd(width)}  ${spec.summary}`),
    '',
    'options:',
    '  -h, --help     show this help; `onnx-compress help <command>` or `<command> --help` for a command',
    '  -V, --version  print the version',
    '  --debug        print stack traces on errors',
  ].join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const debug = argv.includes('--debug');
  cliFlags.debug = debug;
  const [name, ...rest] = argv.filter((a) => a !== '--debug');
  if (name === '--version' || name === '-V') {
    console.log(`onnx-compress ${version} (${TOOL_NAME})`);
    return 0;
  }
  if (name === undefined || name === '--help' || name === '-h') {
    (name ? console.log : console.error)(overview());
    return name ? 0 : 2;
  }
  if (name === 'help') {
    if (rest.length === 0) {
      console.log(overview());
      return 0;
    }
    const command = COMMANDS[rest[0]];
    if (!command || rest.length > 1) return usageError(new UsageError(undefined, command ? `help takes one command, found ${rest.length}` : `unknown command "${rest[0]}"`));
    console.log(helpText(command.spec));
    return 0;
  }
  const command = COMMANDS[name];
  if (!command) return usageError(new UsageError(undefined, name.startsWith('-') ? `unknown option ${name}` : `unknown command "${name}"`));
  try {
    const args = parseArgs(command.spec, rest);
    if (args.help) {
      console.log(helpText(command.spec));
      return 0;
    }
    return await (await command.load()).run(args);
  } catch (e) {
    if (e instanceof UsageError) return usageError(e);
    if (e instanceof CompressError) {
      console.error(`onnx-compress: ${debug ? e.stack : e.message}`);
      return e.exitCode;
    }
    console.error(`onnx-compress: internal error: ${debug ? ((e as Error | null)?.stack ?? describeThrown(e)) : describeThrown(e)}`);
    return 70;
  }
}

function usageError(e: UsageError): number {
  console.error(usageErrorText(e, e.command ? COMMANDS[e.command]?.spec : undefined));
  return 2;
}

/** Runs the command line in this process and exits with its code. */
export function runCli(argv: string[]): void {
  installExitGuard();
  void main(argv).then((code) => {
    commandFinished();
    process.exit(code);
  });
}
