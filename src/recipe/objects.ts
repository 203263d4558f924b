/** Plain-object helpers for recipe data (already parsed YAML: mappings, lists, scalars). */

export type Obj = Record<string, unknown>;
type Seg = string | number;

export function isObject(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function getIn(v: unknown, keys: Seg[]): unknown {
  for (const k of keys) {
    if (!isObject(v) && !Array.isArray(v)) return undefined;
    v = (v as Obj)[k as string];
  }
  return v;
}

export function omit(o: Obj, keys: string[]): Obj {
  return Object.fromEntries(Object.entries(o).filter(([k]) => !keys.includes(k)));
}

/**
 * Deep merge of one layer (defaults, model, variant) onto the result so far: mappings merge key by key, anything
 * else replaces, null removes. `origins` records, for each merged key, the recipe key that set it.
 */
export function mergeLayer(base: Obj, over: Obj, at: Seg[], keys: string[], origins: Map<string, Seg[]>): Obj {
  const out: Obj = { ...base };
  for (const [k, v] of Object.entries(over)) {
    const p = [...keys, k];
    const id = p.join('.');
    if (v === null || (isObject(out[k]) && !isObject(v))) {
      // A mapping removed or replaced whole: what earlier layers set below it is gone.
      for (const o of origins.keys()) if (o === id || o.startsWith(id + '.')) origins.delete(o);
    }
    if (v === null) {
      delete out[k];
      continue;
    }
    origins.set(id, [...at, ...p]);
    setKey(out, k, isObject(v) ? mergeLayer(isObject(out[k]) ? out[k] : {}, v, at, p, origins) : v);
  }
  return out;
}

export function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (!isObject(v)) return v;
  const out: Obj = {};
  for (const k of Object.keys(v).sort()) if (v[k] !== undefined) setKey(out, k, sortKeys(v[k]));
  return out;
}

/** Defined, not assigned: a `__proto__` key (say, in calibration.shapes) must stay a plain key. */
export function setKey(o: Obj, k: string, value: unknown): void {
  Object.defineProperty(o, k, { value, enumerable: true, writable: true, configurable: true });
}
