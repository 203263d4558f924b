/** "Did you mean" lives in src/suggest.ts, below every layer; re-exported here for the recipe modules. */
export { editDistance, suggest } from '../suggest.js';
