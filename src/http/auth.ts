/** Resolving `/v1/sessions/{sid}` requests to their session, with the bearer token checked. */
import type { IncomingHttpHeaders } from 'node:http';
import type { SessionStore } from '../session/store.js';
import type { Session } from '../session/session.js';

export function bearer(headers: IncomingHttpHeaders): string | null {
  const h = headers.authorization;
  if (!h) return null;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(h);
  return m ? m[1] : '';
}

export function sessionOf(store: SessionStore, req: { params: unknown; headers: IncomingHttpHeaders }): Session {
  return store.authorize((req.params as { sid: string }).sid, bearer(req.headers));
}
