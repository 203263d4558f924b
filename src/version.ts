/**
 * The tool's name and version, read from package.json at runtime (once), so the cache key and the
 * manifest always name the code that produced an output. Works from src/ (tsx) and from dist/.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const TOOL_NAME = 'unplugin-onnx-compress';

let cached: string | undefined;

/** The package version, e.g. "0.1.0" ("0.0.0-unknown" if package.json cannot be found). */
export function toolVersion(): string {
  if (cached !== undefined) return cached;
  // Walk up from this module to the package's own package.json (src/ and dist/ sit at different depths).
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === TOOL_NAME && typeof pkg.version === 'string') return (cached = pkg.version);
    } catch {
      // no package.json here (or unreadable): keep walking up
    }
    const up = dirname(dir);
    if (up === dir) return (cached = '0.0.0-unknown');
    dir = up;
  }
}

export const version: string = toolVersion();
