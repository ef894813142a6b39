/** The scope endpoints (record, pause, train-mode, predict-mode, detect-anomaly, exit), backward and grad. */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { AutogradState, BackwardBody, GradBody, GradcheckAnswer, GradcheckBody, Grads, ScopeBody, SessionParams, TransformAnswer, TransformBody } from '../schemas/api.js';
import { runGradcheck, runTransform, type TransformKind } from '../../session/transforms.js';
import { sessionOf } from '../auth.js';
import { problems } from '../responses.js';
import { autogradState, backwardHeads, enterScope, exitScope, gradOfHeads } from '../../session/service.js';
import type { Services } from '../services.js';
import type { ScopeKind } from '../../program/format.js';

const errors = problems(401, 404, 409, 413, 415, 422);
/** The transforms run a program: its step, time and memory limits apply too. */
const programErrors = problems(401, 404, 409, 413, 415, 422, 429);
const list = (v: string | string[]) => (Array.isArray(v) ? v : [v]);

export const autogradRoutes = (S: Services): FastifyPluginAsyncZod => async (app) => {
  app.get('/v1/sessions/:sid/autograd', {
    schema: { summary: 'is_recording, is_training and the open scopes', tags: ['autograd'], params: SessionParams, response: { 200: AutogradState, ...errors } },
  }, async (req) => {
    const s = sessionOf(S.store, req);
    return s.run(() => autogradState(s));
  });

  const scopes: [string, ScopeKind, string][] = [
    ['record', 'record', 'Open a record scope (with autograd.record(train_mode=True))'],
    ['pause', 'pause', 'Open a pause scope (with autograd.pause(train_mode=False))'],
    ['train-mode', 'train_mode', 'Open a train_mode() scope: training on, recording untouched'],
    ['predict-mode', 'predict_mode', 'Open a predict_mode() scope: training off, recording untouched'],
    ['detect-anomaly', 'detect_anomaly', 'Open a detect_anomaly() scope: the first op that makes NaN or Inf stops with 422 anomaly_detected'],
  ];
  for (const [path, kind, summary] of scopes) {
    app.post(`/v1/sessions/:sid/autograd/${path}`, {
      schema: { summary, tags: ['autograd'], params: SessionParams, body: ScopeBody.nullish(), response: { 200: AutogradState, ...errors } },
    }, async (req) => {
      const s = sessionOf(S.store, req);
      return s.run(() => {
        const trainMode = kind === 'record' || kind === 'pause' ? req.body?.train_mode : undefined;
        const scope = enterScope(s, kind, trainMode);
        return { ...autogradState(s), tape: scope.tape?.id ?? null };
      });
    });
  }

  app.post('/v1/sessions/:sid/autograd/exit', {
    schema: { summary: 'Close the innermost scope, restoring the flags it changed (409 scope_empty if none)', tags: ['autograd'], params: SessionParams, response: { 200: AutogradState, ...errors } },
  }, async (req) => {
    const s = sessionOf(S.store, req);
    return s.run(() => {
      exitScope(s);
      return autogradState(s);
    });
  });

  app.post('/v1/sessions/:sid/backward', {
    schema: { summary: 'autograd.backward over several heads (their gradients summed)', tags: ['autograd'], params: SessionParams, body: BackwardBody, response: { 200: Grads, ...errors } },
  }, async (req) => {
    const s = sessionOf(S.store, req);
    const b = req.body;
    return s.run(() => ({ grads: backwardHeads(s, { ...b, heads: list(b.heads) }) }));
  });

  app.post('/v1/sessions/:sid/grad', {
    schema: { summary: 'autograd.grad: gradients as new arrays; .grad untouched; create_graph records them', tags: ['autograd'], params: SessionParams, body: GradBody, response: { 200: Grads, ...errors } },
  }, async (req) => {
    const s = sessionOf(S.store, req);
    const b = req.body;
    return s.run(() => ({ grads: gradOfHeads(s, { ...b, heads: list(b.heads), variables: list(b.variables) }) }));
  });

  const transforms: [TransformKind, string][] = [
    ['vjp', 'torch.autograd.functional.vjp of a session function: its value and v^T J per input'],
    ['jvp', 'torch.autograd.functional.jvp: its value and J v per output (exact, by the transpose of a vjp)'],
    ['jacobian', 'torch.autograd.functional.jacobian: output.shape + input.shape per (output, input)'],
    ['hessian', 'torch.autograd.functional.hessian of a function of one element: input_i.shape + input_j.shape'],
    ['hvp', 'torch.autograd.functional.hvp: its value and H v per input'],
  ];
  for (const [kind, summary] of transforms) {
    app.post(`/v1/sessions/:sid/${kind}`, {
      schema: { summary, tags: ['autograd'], params: SessionParams, body: TransformBody, response: { 200: TransformAnswer, ...programErrors } },
    }, async (req) => {
      const s = sessionOf(S.store, req);
      return s.run(() => runTransform(s, kind, req.body));
    });
  }

  app.post('/v1/sessions/:sid/gradcheck', {
    schema: { summary: "A session function's Jacobian from vjps and jvps against central differences in float64: the largest error per input and where", tags: ['autograd'], params: SessionParams, body: GradcheckBody, response: { 200: GradcheckAnswer, ...programErrors } },
  }, async (req) => {
    const s = sessionOf(S.store, req);
    return s.run(() => runGradcheck(s, req.body));
  });
};
