/**
 * Vite dev server: serves compressed models from memory (computed on first request, then the pipeline's
 * cache), recomputes them when the recipe or a source model changes and reloads the page, and shows
 * errors in Vite's overlay with the recipe's file:line:column.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ViteDevServer } from 'vite';
import { DEV_PREFIX, fixedFileName } from './assets.js';
import { isOwnId } from './ids.js';
import { bundlerError } from './errors.js';
import type { CompressedModels } from './models.js';

/**
 * Answers `<base>@onnx-compress/<id>.onnx`, and `<base><modelsDir>/<output>` for `emit: always` builds.
 * A model that cannot be built is answered 503 (the model is unavailable until its recipe, source or data
 * is fixed; the dev server rebuilds and reloads the page then) with one line of text, while the error
 * itself goes to the terminal and Vite's overlay: never a 500 or a stack trace. Other paths go to Vite.
 */
export function modelMiddleware(models: CompressedModels, server: ViteDevServer) {
  return (req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void): void => {
    if (req.method !== 'GET' && req.method !== 'HEAD') return next();
    serveModel(models, server, req, res).then(
      (served) => served || next(),
      (e) => {
        // Not a build's failure (one of ours is answered in serveModel): still ours to answer, not Vite's 500.
        try {
          reportError(server, e);
        } catch {
          // the answer below still goes out
        }
        if (!res.headersSent) unavailable(res, req, 'onnx-compress: the model could not be served; the error is in the terminal');
        else res.destroy();
      },
    );
  };
}

/** 503 with one line of text: what the page's fetch() sees when a model cannot be built. */
function unavailable(res: ServerResponse, req: IncomingMessage, text: string): void {
  const body = Buffer.from(`${text.replace(/[\r\n]+/g, ' ').slice(0, 2000)}\n`);
  res.writeHead(503, { 'content-type': 'text/plain; charset=utf-8', 'content-length': body.byteLength, 'cache-control': 'no-store' });
  res.end(req.method === 'HEAD' ? undefined : body);
}

async function serveModel(models: CompressedModels, server: ViteDevServer, req: IncomingMessage, res: ServerResponse): Promise<boolean> {
  let pathname: string;
  try {
    pathname = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
  } catch {
    return false; // a malformed URL or % escape is not one of ours: Vite answers it (404), never a 500 with a stack
  }
  const base = server.config.base.endsWith('/') ? server.config.base : server.config.base + '/';
  if (!pathname.startsWith(base)) return false;
  const rel = pathname.slice(base.length);
  const build = rel.startsWith(DEV_PREFIX)
    ? (await models.builds().catch(() => [])).find((b) => `${DEV_PREFIX}${b.id}.onnx` === rel)
    : (await models.builds().catch(() => [])).find((b) => b.emit === 'always' && fixedFileName(b, models.options.modelsDir) === rel);
  if (!build) return false;
  try {
    const { bytes } = await models.compress(build);
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': bytes.byteLength, 'cache-control': 'no-cache' });
    res.end(req.method === 'HEAD' ? undefined : bytes);
  } catch (e) {
    reportError(server, e);
    unavailable(res, req, `onnx-compress could not build "${build.id}": ${bundlerError(e).message}`);
  }
  return true;
}

/**
 * A recipe, source model or data file changed: re-read the recipes, invalidate our modules, recompute
 * the models this session has used, then reload the page (or show the error). Returns whether the file
 * was one of ours (then Vite's own update is skipped).
 */
export async function onInputChange(models: CompressedModels, server: ViteDevServer, file: string): Promise<boolean> {
  if (!(await models.inputs()).includes(file)) return false;
  const used = models.requestedIds();
  models.startBundle();
  for (const mod of server.moduleGraph.idToModuleMap.values()) if (mod.id && isOwnId(mod.id)) server.moduleGraph.invalidateModule(mod);
  try {
    await models.builds(); // a broken recipe fails here, with its location
    const builds = await Promise.all(used.map((id) => models.byId(id).catch(() => undefined)));
    await Promise.all(builds.flatMap((b) => (b ? [models.compress(b)] : [])));
    server.ws.send({ type: 'full-reload', path: '*' });
  } catch (e) {
    reportError(server, e);
  }
  return true;
}

/** A recipe or compression error in the dev server: in the terminal and in the browser's overlay, with the recipe's code frame. */
function reportError(server: ViteDevServer, e: unknown): void {
  const err = bundlerError(e);
  server.config.logger.error(`[onnx-compress] ${err.message}${err.frame ? `\n${err.frame}` : ''}`, { timestamp: true });
  server.ws.send({ type: 'error', err: { message: err.message, stack: '', id: err.id, loc: err.loc, frame: err.frame, plugin: 'onnx-compress' } });
}
