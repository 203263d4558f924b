/**
 * A command that ends before `main` returned must not exit 0: a data module may call process.exit(0),
 * or leave a promise that never settles (Node then exits 0 once nothing else is pending), and the
 * models not yet written would go unnoticed. The guard turns such an exit into exit 2 with one line
 * naming the builds still running (whatever code the module exited with); an unhandled rejection or
 * an uncaught exception (a data module's stray promise or timer) becomes exit 2 with its message,
 * attributed to the data modules being read at that moment.
 */
import { activeDataModules as modules, cliFlags, loadedDataModules as loaded, runningBuilds as running } from '../activity.js';
import { describeThrown } from '../limits.js';

let finished = false;
let installed = false;

/** Called when main() returned: the exit code is then main's. */
export function commandFinished(): void {
  finished = true;
}

export function installExitGuard(): void {
  if (installed) return;
  installed = true;
  process.on('exit', (code) => {
    if (finished) return;
    const what = running.size ? `; models not written: ${[...running].join(', ')}` : '';
    // Any code a data module exits with (0, 1, 70 …) is replaced: the command did not run to its end.
    const how = code === 0 ? 'a data module called process.exit, or a promise it returned never settled' : `process.exit(${code}) was called by a data module`;
    // The data modules loaded are the suspects: named first, as the place of the error.
    process.stderr.write(`onnx-compress: ${loaded.size ? `${[...loaded].join(', ')}: ` : ''}the command ended before it finished (${how})${what}\n`);
    process.exitCode = 2;
  });
  // A throw from a data module's timer or callback, outside any call the command awaits.
  process.on('uncaughtException', (error) => {
    finished = true;
    const from = modules.size ? [...modules].join(', ') : loaded.size ? [...loaded].join(', ') : undefined;
    if (from) {
      process.stderr.write(`onnx-compress: ${from}: an exception was thrown and nothing caught it: ${cliFlags.debug ? ((error as Error | null)?.stack ?? describeThrown(error)) : describeThrown(error)}\n`);
      process.exit(2);
    }
    process.stderr.write(`onnx-compress: internal error: ${cliFlags.debug ? ((error as Error | null)?.stack ?? describeThrown(error)) : describeThrown(error)}\n`);
    process.exit(70);
  });
  process.on('unhandledRejection', (reason) => {
    const from = modules.size ? [...modules].join(', ') : loaded.size ? [...loaded].join(', ') : 'a data module or plugin';
    process.stderr.write(`onnx-compress: ${from}: a promise was rejected and nothing handled it: ${describeThrown(reason)}\n`);
    finished = true;
    process.exit(2);
  });
}
