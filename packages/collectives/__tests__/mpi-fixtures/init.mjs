// A script that does not know how it was started: initCommunicator() must return the MPI world under mpiexec.
import { initCommunicator } from '@farskip/collectives';
const world = await initCommunicator();
const x = Float32Array.from([world.rank + 1]);
await world.allReduce(x, 'sum').wait();
console.log(JSON.stringify({ backend: world.backend, rank: world.rank, size: world.size, sum: x[0] }));
world.destroy();
