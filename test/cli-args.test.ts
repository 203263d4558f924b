/**
 * The CLI's one argument parser (src/cli/args.ts) and what main() does with it: usage errors in one
 * style (`onnx-compress <cmd>: <message>`, the usage line, a pointer to --help, exit 2), --version,
 * `help <command>` and `<command> --help` for every command, help texts that list exactly the options
 * each command accepts.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { main } from '../src/cli.js';
import { helpText, parseArgs, UsageError } from '../src/cli/args.js';
import { COMMANDS } from '../src/cli/commands.js';

async function cli(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const spies = [
    vi.spyOn(console, 'log').mockImplementation((...a: unknown[]) => void out.push(a.join(' ') + '\n')),
    vi.spyOn(console, 'error').mockImplementation((...a: unknown[]) => void err.push(a.join(' ') + '\n')),
  ];
  try {
    const code = await main(args);
    return { code, out: out.join(''), err: err.join('') };
  } finally {
    for (const s of spies) s.mockRestore();
  }
}

const spec = COMMANDS.build.spec;
const usage = (args: string[]) => {
  try {
    parseArgs(spec, args);
  } catch (e) {
    expect(e).toBeInstanceOf(UsageError);
    return (e as Error).message;
  }
  throw new Error(`no usage error for ${args.join(' ')}`);
};

describe('parseArgs', () => {
  it('reads --name value, --name=value, short flags, booleans and --', () => {
    expect(parseArgs(spec, ['r.yaml', '--out=o', '--no-cache', '--device', 'gpu', '-j', '2', '-q'])).toEqual({
      options: { out: 'o', 'no-cache': true, device: 'gpu', concurrency: 2, quiet: true },
      positionals: ['r.yaml'],
      help: false,
    });
    expect(parseArgs(spec, ['--', '--weird.yaml']).positionals).toEqual(['--weird.yaml']);
    expect(parseArgs(spec, ['--debug', '-h']).help).toBe(true);
    expect(parseArgs(COMMANDS.repack.spec, ['--help']).help).toBe(true); // no positionals needed for help
  });

  it('names the mistake', () => {
    expect(usage(['--frobnicate'])).toBe('unknown option --frobnicate');
    expect(usage(['-x'])).toBe('unknown option -x');
    expect(usage(['--device', 'tpu'])).toBe('--device: expected one of cpu, gpu, auto, found "tpu"');
    expect(usage(['-j', '0'])).toBe('-j: expected a positive integer, found "0"');
    expect(usage(['--concurrency=1.5'])).toBe('--concurrency: expected a positive integer, found "1.5"');
    expect(usage(['--out'])).toBe('--out needs a value (dir)');
    expect(usage(['--out', '--json'])).toBe('--out needs a value (dir)');
    expect(usage(['--json=yes'])).toBe('--json takes no value');
    expect(usage(['a.yaml', 'b.yaml'])).toBe('unexpected argument "b.yaml"');
    expect(() => parseArgs(COMMANDS.repack.spec, ['in.onnx'])).toThrow('missing the output file');
    expect(() => parseArgs(COMMANDS.repack.spec, [])).toThrow('missing the input file and the output file');
  });

  it('takes an optional value only after =', () => {
    const repack = COMMANDS.repack.spec;
    expect(parseArgs(repack, ['--external-data', 'a.onnx', 'b.onnx'])).toMatchObject({ options: { 'external-data': true }, positionals: ['a.onnx', 'b.onnx'] });
    expect(parseArgs(repack, ['a.onnx', 'b.onnx', '--external-data=w.bin']).options).toEqual({ 'external-data': 'w.bin' });
  });
});

describe('onnx-compress usage', () => {
  it('one style for usage errors in every command: message, usage line, pointer to --help, exit 2', async () => {
    const cases: [string[], string][] = [
      [['build', '--frobnicate'], 'unknown option --frobnicate'],
      [['build', '--device', 'tpu'], '--device: expected one of cpu, gpu, auto, found "tpu"'],
      [['validate', 'a.yaml', 'b.yaml'], 'unexpected argument "b.yaml"'],
      [['validate', '--json'], 'unknown option --json'],
      [['inspect'], 'missing the model file'],
      [['inspect', 'm.onnx', '--yaml'], 'unknown option --yaml'],
      [['repack', 'a.onnx'], 'missing the output file'],
      [['repack', 'a.onnx', 'b.onnx', '--inline', '--external-data'], '--inline and --external-data cannot be combined'],
      [['repack', 'a.onnx', 'b.onnx', '--external-data=../escape.bin'], '--external-data takes a plain file name (written next to the output), not "../escape.bin"'],
    ];
    for (const [args, message] of cases) {
      const r = await cli(...args);
      const cmd = args[0];
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.out).toBe('');
      expect(r.err).toBe(`onnx-compress ${cmd}: ${message}\nusage: onnx-compress ${cmd} ${COMMANDS[cmd].spec.synopsis}\nsee 'onnx-compress ${cmd} --help'\n`);
    }
  });

  it('an unknown command or top-level option: exit 2 with a pointer to --help; no command: the overview on stderr, exit 2', async () => {
    expect(await cli('frobnicate')).toEqual({ code: 2, out: '', err: `onnx-compress: unknown command "frobnicate"\nsee 'onnx-compress --help'\n` });
    expect(await cli('--frobnicate')).toMatchObject({ code: 2, err: /^onnx-compress: unknown option --frobnicate\n/ });
    expect(await cli('help', 'frobnicate')).toMatchObject({ code: 2, err: /unknown command "frobnicate"/ });
    const none = await cli();
    expect(none.code).toBe(2);
    expect(none.err).toMatch(/^usage: onnx-compress <command> \[options\]/);
  });

  it('--version prints the package version', async () => {
    const { version } = JSON.parse(readFileSync(resolve('package.json'), 'utf8'));
    for (const flag of ['--version', '-V']) expect(await cli(flag)).toEqual({ code: 0, out: `onnx-compress ${version} (unplugin-onnx-compress)\n`, err: '' });
  });

  it('--help lists every command', async () => {
    const r = await cli('--help');
    expect(r.code).toBe(0);
    const lines = r.out.split('\n');
    for (const name of Object.keys(COMMANDS)) expect(lines.some((l) => l.startsWith(`  ${name} `) && l.endsWith(` ${COMMANDS[name].spec.summary}`)), name).toBe(true);
    expect((await cli('help')).out).toBe(r.out);
  });

  it('help <command> and <command> --help print the same text, listing exactly the options the parser accepts', async () => {
    for (const [name, { spec }] of Object.entries(COMMANDS)) {
      const a = await cli('help', name);
      const b = await cli(name, '--help');
      const c = await cli(name, '-h');
      expect(a).toEqual({ code: 0, out: helpText(spec) + '\n', err: '' });
      expect(b).toEqual(a);
      expect(c).toEqual(a);
      const listed = [...a.out.matchAll(/^ {2}(?:-(\w), )? *--([\w-]+)/gm)].map((m) => m[2]);
      expect(listed.sort()).toEqual([...spec.options.map((o) => o.name), 'help', 'debug'].sort());
      for (const m of a.out.matchAll(/^ {2}-(\w), --([\w-]+)/gm)) expect(spec.options.concat({ name: 'help', short: 'h', help: '' }).find((o) => o.name === m[2])?.short).toBe(m[1]);
      // Every listed option parses; an option not listed does not.
      for (const o of spec.options) {
        const value = o.value && !o.optionalValue ? [o.choices?.[0] ?? (o.positiveInteger ? '2' : 'x')] : [];
        const positionals = spec.positionals.filter((p) => p.required).map((_, i) => `f${i}.onnx`);
        expect(() => parseArgs(spec, [...positionals, `--${o.name}`, ...value]), `${name} --${o.name}`).not.toThrow();
      }
    }
  });

  it('the build help names its defaults', async () => {
    const r = await cli('build', '--help');
    expect(r.out).toMatch(/^usage: onnx-compress build \[recipe\] \[options\]/);
    expect(r.out).toMatch(/-o, --out dir +where outputs and manifests go \(default dist\/onnx\)/);
    expect(r.out).toMatch(/--device cpu\|gpu\|auto/);
    expect(r.out).toMatch(/-j, --concurrency n/);
  });
});
