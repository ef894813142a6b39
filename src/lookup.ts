/**
 * Objects keyed by client strings (names, dtypes, keywords) without a prototype: in a plain `{}`,
 * `table['constructor']` or `table['__proto__']` finds Object.prototype's members, and assigning
 * `answer['__proto__']` replaces the prototype instead of adding a key.
 */

/** A frozen lookup table: only its own entries answer; anything else is undefined. */
export function table<V>(entries: Record<string, V>): Readonly<Record<string, V | undefined>> {
  return Object.freeze(Object.assign(Object.create(null) as Record<string, V>, entries));
}

/** An empty object for an answer keyed by client names (JSON.stringify writes it as usual). */
export function record<V>(): Record<string, V> {
  return Object.create(null) as Record<string, V>;
}
