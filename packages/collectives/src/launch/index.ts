// The launcher (threads ranks in this process, child processes for mpi/nccl/rccl), the per-rank entry point
// initCommunicator(), and the rendezvous store the nccl/rccl bootstrap uses.
export { launch } from './launch.js';
export type { LaunchOptions, RankResult } from './launch.js';
export { initCommunicator, registerCommunicatorFactory, worldRank, worldSize, underMpirun } from './init.js';
export type { Backend, CommunicatorFactory, InitOptions } from './init.js';
export { RendezvousStore, RendezvousClient } from './rendezvous.js';
