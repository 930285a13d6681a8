import base from '../../tooling/tsup.base';

// More entries than the other packages: the worker that drives a threads-backend rank's collectives, the worker
// that runs one launched rank, and the farskip-launch CLI are separate files at run time. Flat names keep them
// next to the chunks that load them with `new URL('./comm-worker.js', import.meta.url)`.
export default {
  ...base,
  entry: { index: 'src/index.ts', 'comm-worker': 'src/threads/comm-worker.ts', 'rank-worker': 'src/launch/rank-worker.ts', cli: 'src/cli.ts' },
};
