/**
 * Server bugs the fuzzer has found and reported, not yet fixed. The vitest fuzz suite counts
 * them without failing (so `npm test` stays meaningful for everything else); `npm run fuzz`
 * still counts them as failures. Remove an entry once the server is fixed: the suite then
 * fails again if the bug comes back.
 *
 * Each entry says how to reproduce it with one request.
 */
import type { Finding } from './harness.js';

const KNOWN: { id: string; matches: (f: Finding) => boolean }[] = [
  {
    // POST /ops {"ops":[{"op":"add","args":["x", <[[[...1...]]] nested 1500 deep>]}]} -> 500.
    // Also: POST /arrays {"name":"q","data":<2000 deep>}, POST /arrays/x/backward {"head_grad":<2000 deep>},
    // and 1000 nested scope statements. zod's recursive NestedNums / Statement schemas overflow the
    // stack (RangeError) before the handler's own 32-level check runs.
    id: 'deep-json-stack-overflow',
    matches: (f) => f.status === 500 && (/Maximum call stack size exceeded/.test(f.log ?? '') || nesting(f) > 900),
  },
  {
    // POST /ops {"ops":[{"op":"attach_grad","args":[]}]} -> 500 (TypeError in Session.resolve).
    // Also {"op":"attach_grad"} and {"op":"attach_grad","args":[1]}, and {"op":"delete"} without
    // args: the Statement union falls back to OpStatement for the reserved op names, so these
    // pass validation and the runner indexes args that are not there.
    id: 'reserved-statement-args',
    matches: (f) => f.status === 500 && ((/program\.ts/.test(f.log ?? '') && /runStatement/.test(f.log ?? '')) || (!f.log && /"op":"(attach_grad|delete)"/.test(body(f)))),
  },
  {
    // POST /ops {"ops":[{"op":"attach_grad","args":["x"],"attrs":{"grad_req":5}}]} -> 500 "Response
    // doesn't match the schema", and from then on every answer that describes x is a 500 (the
    // bad grad_req is stored on the array). Same cause as above: the OpStatement fallback lets
    // attrs of any type through for attach_grad.
    id: 'attach-grad-attrs-unchecked',
    matches: (f) => f.status === 500 && /Response doesn't match the schema/.test(f.log ?? ''),
  },
  {
    // GET /%FF -> 400 application/json {"error":"Bad Request","code":"FST_ERR_BAD_URL",...}:
    // fastify answers malformed percent-encoding itself, bypassing the problem+json error handler.
    id: 'bad-url-not-problem-json',
    matches: (f) => f.status === 400 && /FST_ERR_BAD_URL/.test(f.answer ?? ''),
  },
];

function body(f: Finding): string {
  const b = f.req.body;
  return b === undefined ? '' : Buffer.isBuffer(b) ? b.toString('utf8') : b;
}

/** The deepest bracket nesting of the request body (the log line may be attributed to another case). */
function nesting(f: Finding): number {
  let d = 0;
  let max = 0;
  for (const c of body(f)) {
    if (c === '[' || c === '{') max = Math.max(max, ++d);
    else if (c === ']' || c === '}') d--;
  }
  return max;
}

/** The id of the known bug a finding is, or null for a new finding. */
export function knownBug(f: Finding): string | null {
  return KNOWN.find((k) => k.matches(f))?.id ?? null;
}
