/**
 * The web compatibility check moved to the runtime layer (src/runtime/web.ts), where the build's web check
 * runs it; re-exported here for the callers that import it from the quantize step.
 */
export { checkWebCompatibility, unsupportedOpOf, type WebCheckOptions, type WebCheckReport } from '../../runtime/web-compat.js';
