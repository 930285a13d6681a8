// Runs a block of op tests once per backend an f32 op can take: the default ('auto': native when built, else
// the TS fallback) and the plain-TS reference forced with useBackend('ts').
import { afterEach, beforeEach, describe } from 'vitest';
import { backendInfo, useBackend } from '@farskip/kernels';

export const NATIVE = backendInfo().backend === 'native';
export const BACKENDS = [NATIVE ? 'auto (native)' : 'auto (ts fallback: native not built)', 'ts'] as const;

export function forBackends(body: () => void): void {
  describe.each(BACKENDS)('backend %s', (label) => {
    beforeEach(() => { useBackend(label === 'ts' ? 'ts' : 'auto'); });
    afterEach(() => { useBackend('auto'); });
    body();
  });
}
