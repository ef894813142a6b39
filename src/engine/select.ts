/** Picks the compute backend: the native engine unless GRADSERVE_BACKEND=reference. */
import type { Backend } from './backend.js';
import { referenceBackend } from './reference.js';

export async function selectBackend(name: 'native' | 'reference'): Promise<Backend> {
  if (name === 'reference') return referenceBackend;
  const { loadNativeBackend } = await import('./native.js');
  const native = loadNativeBackend();
  if (!native) {
    throw new Error('the native engine is not built (build/Release/gradserve.node is missing): run `npm install`, or set GRADSERVE_BACKEND=reference');
  }
  return native;
}
