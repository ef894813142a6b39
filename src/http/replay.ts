/**
 * Requests the server replays from its journal at start are marked with a header whose value is a
 * secret of this process: they pass authorization and the protections (rate limits, back-pressure)
 * as the original requests did, and no client can forge one.
 */
import { randomBytes } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';

export const REPLAY_HEADER = 'x-gradserve-replay';
export const REPLAY_SECRET = randomBytes(24).toString('base64url');

export function isReplay(req: { headers: IncomingHttpHeaders }): boolean {
  return req.headers[REPLAY_HEADER] === REPLAY_SECRET;
}
