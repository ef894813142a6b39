/**
 * gradserve-client: a TypeScript client for a gradserve server, mirroring MXNet's `nd` and
 * `autograd` with async calls.
 *
 *     import { connect } from 'gradserve-client';
 *     const gs = await connect('http://127.0.0.1:8080', { seed: 1 });
 *     const x = await gs.nd.arange(4).reshape([4, 1]);
 *     await x.attachGrad();
 *     const y = await gs.autograd.record(() => x.T().dot(x).mul(2));
 *     await y.backward();
 *     await x.grad().tolist();   // [[0], [4], [8], [12]]
 *
 * The HTTP layer is openapi-fetch typed by `schema.d.ts`, generated from openapi.yaml
 * (`npm run gen:client`); `gs.api` exposes it for endpoints the thin layer does not wrap.
 */
export { connect, Session, Autograd, DEFAULT_URL } from './session.js';
export type { ConnectOptions, Descriptor, OpInfo, AutogradState, GradReq, BackwardOptions, GradOptions, Attrs, OpFunction, Nd, NdBuiltins, TransformKind, TransformOptions, ArrayTree, GradcheckOptions, GradcheckReport } from './session.js';
export { NDArray, LazyArray } from './ndarray.js';
export type { OpName, OpRoot } from './op-names.js';
export type { DType, Nested, OpArg } from './ndarray.js';
export { GradserveError } from './errors.js';
export type { ProgressCallback } from './progress.js';
export type { Problem } from './errors.js';
export type { paths, components } from './schema.js';
