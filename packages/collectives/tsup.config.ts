import base from '../../tooling/tsup.base';

// Two more entries than the other packages: the worker that drives a threads-backend rank's collectives and
// the farskip-launch CLI are separate files at run time.
export default { ...base, entry: ['src/index.ts', 'src/threads/comm-worker.ts', 'src/cli.ts'] };
