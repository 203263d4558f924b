/**
 * The one argument parser of every onnx-compress command, and the help texts built from the same
 * declarations, so a command's --help lists exactly the options it accepts.
 *
 * Accepted forms: `--name value`, `--name=value`, `-x value`, boolean `--flag`, `--` ends options.
 * Options with `optionalValue` take a value only as `--name=value` (a bare `--name` means "yes").
 * A mistake is a UsageError; the CLI prints `onnx-compress <command>: <message>`, the usage line and a
 * pointer to `--help`, and exits 2.
 */

export interface OptionSpec {
  /** Long name, without the dashes. */
  name: string;
  short?: string;
  /** Placeholder for the value in help (`dir`, `n`); absent for a boolean flag. */
  value?: string;
  /** `--name` alone, or `--name=value`. */
  optionalValue?: boolean;
  choices?: readonly string[];
  /** The value must be an integer ≥ 1. */
  positiveInteger?: boolean;
  help: string;
}

export interface CommandSpec {
  name: string;
  /** One line for `onnx-compress --help`. */
  summary: string;
  /** What follows `onnx-compress <name>` in the usage line, e.g. `[recipe] [options]`. */
  synopsis: string;
  /** Paragraphs for `onnx-compress help <name>`. */
  description: string;
  /** Positional arguments in order; the last may be `variadic` (never needed yet). */
  positionals: { name: string; required: boolean }[];
  options: OptionSpec[];
}

export type OptionValue = string | boolean | number;

export interface ParsedArgs {
  options: Record<string, OptionValue | undefined>;
  positionals: string[];
  /** --help or -h was given. */
  help: boolean;
}

export class UsageError extends Error {
  constructor(
    readonly command: string | undefined,
    message: string,
  ) {
    super(message);
    this.name = 'UsageError';
  }
}

/** Options every command takes, handled by src/cli.ts. */
export const COMMON_OPTIONS: OptionSpec[] = [
  { name: 'help', short: 'h', help: 'show this help' },
  { name: 'debug', help: 'print stack traces on errors' },
];

export function parseArgs(spec: CommandSpec, args: readonly string[]): ParsedArgs {
  const all = [...spec.options, ...COMMON_OPTIONS];
  const fail = (message: string): never => {
    throw new UsageError(spec.name, message);
  };
  const options: ParsedArgs['options'] = {};
  const positionals: string[] = [];
  let help = false;
  for (let i = 0; i < args.length; i++) {
    const raw = args[i];
    if (raw === '--') {
      positionals.push(...args.slice(i + 1));
      break;
    }
    if (!raw.startsWith('-') || raw === '-') {
      positionals.push(raw);
      continue;
    }
    const long = raw.startsWith('--');
    const eq = long ? raw.indexOf('=') : -1;
    const name = long ? raw.slice(2, eq > 0 ? eq : undefined) : raw.slice(1);
    const opt = all.find((o) => (long ? o.name === name : o.short === name));
    if (!opt) fail(`unknown option ${long ? `--${name}` : raw}`);
    const flag = long ? `--${opt!.name}` : raw;
    let value: OptionValue;
    if (!opt!.value) {
      if (eq > 0) fail(`${flag} takes no value`);
      value = true;
    } else if (eq > 0) value = raw.slice(eq + 1);
    else if (opt!.optionalValue) value = true;
    else {
      const next = args[i + 1];
      if (next === undefined || (next.startsWith('-') && next !== '-')) fail(`${flag} needs a value (${opt!.value})`);
      value = next;
      i++;
    }
    if (typeof value === 'string') value = checkValue(opt!, flag, value, fail);
    if (opt!.name === 'help') help = true;
    else if (opt!.name !== 'debug') options[opt!.name] = value;
  }
  if (help) return { options, positionals, help };
  const required = spec.positionals.filter((p) => p.required);
  if (positionals.length < required.length) {
    const missing = required.slice(positionals.length).map((p) => p.name);
    fail(`missing ${missing.join(' and ')}`);
  }
  if (positionals.length > spec.positionals.length) {
    fail(spec.positionals.length ? `unexpected argument "${positionals[spec.positionals.length]}"` : `takes no arguments, found "${positionals[0]}"`);
  }
  return { options, positionals, help };
}

function checkValue(opt: OptionSpec, flag: string, value: string, fail: (m: string) => never): OptionValue {
  if (opt.choices && !opt.choices.includes(value)) fail(`${flag}: expected one of ${opt.choices.join(', ')}, found "${value}"`);
  if (opt.positiveInteger) {
    const n = Number(value);
    if (!/^\d+$/.test(value) || !Number.isSafeInteger(n) || n < 1) fail(`${flag}: expected a positive integer, found "${value}"`);
    return n;
  }
  if (value === '' && !opt.optionalValue) fail(`${flag} needs a value (${opt.value})`);
  return value;
}

export function usageLine(spec: CommandSpec): string {
  return `usage: onnx-compress ${spec.name} ${spec.synopsis}`;
}

/** The full help of one command: usage, description, options (its own, then the common ones). */
export function helpText(spec: CommandSpec): string {
  const rows = [...spec.options, ...COMMON_OPTIONS].map((o) => {
    const value = o.value ? (o.optionalValue ? `[=${o.value}]` : ` ${o.choices ? o.choices.join('|') : o.value}`) : '';
    return [`${o.short ? `-${o.short}, ` : '    '}--${o.name}${value}`, o.help];
  });
  const width = Math.max(...rows.map(([l]) => l.length));
  return [usageLine(spec), '', spec.description, '', 'options:', ...rows.map(([l, h]) => `  ${l.padEnd(width)}  ${h}`)].join('\n');
}

/** The message a usage error prints (to stderr; the CLI exits 2). */
export function usageErrorText(e: UsageError, spec: CommandSpec | undefined): string {
  if (!spec) return `onnx-compress: ${e.message}\nsee 'onnx-compress --help'`;
  return `onnx-compress ${spec.name}: ${e.message}\n${usageLine(spec)}\nsee 'onnx-compress ${spec.name} --help'`;
}
