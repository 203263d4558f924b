/**
 * What the process is doing right now, for the CLI's exit guard (src/cli/exit-guard.ts): the builds in
 * progress and the user data modules being imported or iterated. Lower layers mark; only the CLI reads.
 */
/** Set by the CLI's --debug: print stack traces of internal errors (never otherwise). */
export const cliFlags = { debug: false };

export const runningBuilds = new Set<string>();
export const activeDataModules = new Set<string>();
/** Every data module this process has imported (a stray rejection may come after its loader returned). */
export const loadedDataModules = new Set<string>();
