// Failure modes of the mpi backend, one rank (mpiexec -n 2 node fail.mjs MODE):
//   die:     rank 1 exits (code 3) before the collective; the job must end with an error, never hang
//   kill:    rank 1 is SIGKILLed before the collective; likewise
//   timeout: rank 1 joins the allReduce 1.5 s late; rank 0 (timeoutMs 300) gets a CollectiveError 'timeout',
//            then the late operation still completes and both ranks exit by themselves
//   abort:   rank 0 calls abortMpi(7) while rank 1 waits for a message that never comes
const { initMpi, abortMpi, CollectiveError } = await import(new URL('../../dist/index.js', import.meta.url).href);
const mode = process.argv[2];
const world = initMpi({ timeoutMs: mode === 'timeout' ? 300 : 20_000 });
const { rank } = world;
const out = (o) => console.log(JSON.stringify({ rank, ...o }));

if (mode === 'die') {
  if (rank === 1) process.exit(3); // exit hook: MPI_Abort
  await world.allReduce(new Float32Array(1024)).wait();
  out({ unexpected: 'allReduce completed without rank 1' });
} else if (mode === 'kill') {
  if (rank === 1) process.kill(process.pid, 'SIGKILL'); // no hook runs: the launcher must notice
  await world.allReduce(new Float32Array(1024)).wait();
  out({ unexpected: 'allReduce completed without rank 1' });
} else if (mode === 'timeout') {
  const buf = new Float32Array([rank + 1]);
  if (rank === 1) await new Promise((r) => setTimeout(r, 1500));
  const w = world.allReduce(buf);
  let error = null;
  try {
    await w.wait();
  } catch (e) {
    error = { isCollectiveError: e instanceof CollectiveError, kind: e.kind, op: e.op, communicator: e.communicator, rank: e.rank, message: e.message };
  }
  // the timed-out MPI_Wait keeps running; wait for the late peer so both ranks can finish cleanly
  await new Promise((r) => setTimeout(r, rank === 0 ? 2500 : 0));
  out({ error, value: buf[0] });
} else if (mode === 'abort') {
  await world.barrier().wait();
  if (rank === 0) abortMpi(7);
  await world.recv(new Float32Array(1), 0).wait();
  out({ unexpected: 'recv completed' });
}
