import base from '../../tooling/tsup.base';
export default { ...base, format: ['esm'], entry: ['src/cli.ts', 'src/index.ts', 'src/systems-rank.ts', 'src/repro-stage.ts'], external: [...(base.external ?? []), '@resvg/resvg-js', 'vega', 'vega-lite', 'cli-progress', 'yaml', 'zod'] };
