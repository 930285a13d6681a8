// threads backend: ranks as threads of one process, collectives driven by a per-rank comm worker over
// SharedArrayBuffers. Names are prefixed so they never clash with the mpi / nccl backends' exports.
export { ThreadsCommunicator } from './communicator.js';
export type { ThreadsBootstrap, ThreadsOptions } from './communicator.js';
export { createThreadsWorld, wireThreadsWorld, bootstrapTransfer as threadsBootstrapTransfer } from './world.js';
export type { ThreadsWorldWiring } from './world.js';
export { linkForCommShare, parseLinkEmulation } from './protocol.js';
export type { LinkEmulation } from './protocol.js';
export { sharedLike as threadsSharedLike } from './staging.js';
