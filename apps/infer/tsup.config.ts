import base from '../../tooling/tsup.base';
export default { ...base, format: ['esm'], entry: ['src/cli.ts', 'src/index.ts'], external: [...(base.external ?? []), 'prom-client', 'zod'] };
