export {
  loadRecipe,
  parseRecipe,
  quantizeDefaults,
  normalizedStepConfig,
  positionOf,
  mapFilePaths,
  mapFilePathsAsync,
  FILE_KEYS,
  filesOf,
  parseBytes,
  formatIssue,
  RecipeError,
  type LoadOptions,
  type RecipeIssue,
} from './load.js';
export { unsupportedFeatures, dataExtensions, type UnsupportedFeature } from './support.js';
export { suggest, editDistance } from '../suggest.js';
export * from './types.js';
