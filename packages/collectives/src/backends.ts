// Wires the mpi and nccl/rccl backends into initCommunicator(), so a script started with
// `farskip-launch --backend mpi|nccl|rccl` (or under mpirun) gets its world without knowing the backend.
// Kept here, not in launch/, so the launcher never imports a backend it does not use until it is asked for.
import { envVar as env } from './env.js';
import { registerCommunicatorFactory } from './launch/init.js';
import { initMpi } from './mpi/index.js';
import { initNccl, initRccl } from './nccl/index.js';

const intEnv = (k: string, dflt: number): number => {
  const v = env(k);
  return v === undefined || v === '' ? dflt : Number(v);
};

registerCommunicatorFactory('mpi', (o) => initMpi(o));
// One rank per GPU: the device is the rank's LOCAL_RANK; the unique id travels through the launcher's
// rendezvous store (FARSKIP_RDZV), which initNccl picks up by itself.
for (const [name, init] of [['nccl', initNccl], ['rccl', initRccl]] as const) {
  registerCommunicatorFactory(name, (o) => init({
    ...o,
    rank: intEnv('RANK', 0),
    size: intEnv('WORLD_SIZE', 1),
    device: typeof o.device === 'number' ? o.device : intEnv('LOCAL_RANK', 0),
  }));
}
