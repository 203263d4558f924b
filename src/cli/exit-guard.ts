/**
 * A command that ends before `main` returned must not exit 0: a data module may call process.exit(0),
 * or leave a promise that never settles (Node then exits 0 once nothing else is pending), and the
 * models not yet written would go unnoticed. The guard turns such an exit into exit 2 with one line
 * naming the builds still running; an unhandled rejection (a data module's stray promise) becomes
 * exit 2 with its message, attributed to the data modules being read at that moment.
 */
import { activeDataModules as modules, loadedDataModules as loaded, runningBuilds as running } from '../activity.js';
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
    if (finished || code !== 0) return;
    const what = (running.size ? `; models not written: ${[...running].join(', ')}` : '') + (loaded.size ? `; data modules loaded: ${[...loaded].join(', ')}` : '');
    process.stderr.write(
      `onnx-compress: the command ended before it finished (a data module called process.exit, or a promise it returned never settled)${what}\n`,
    );
    process.exitCode = 2;
  });
  process.on('unhandledRejection', (reason) => {
    const from = modules.size ? [...modules].join(', ') : loaded.size ? [...loaded].join(', ') : 'a data module or plugin';
    process.stderr.write(`onnx-compress: ${from}: a promise was rejected and nothing handled it: ${describeThrown(reason)}\n`);
    finished = true;
    process.exit(2);
  });
}
