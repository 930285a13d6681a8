import { gpuDeviceCount, openGpu, parseDevice } from '@farskip/device';

// Nothing is loaded at import: the CUDA driver (libcuda.so.1) or HIP runtime (libamdhip64.so) is looked up on first use.
const found = [];
for (const kind of ['cuda', 'hip']) {
  const n = gpuDeviceCount(kind);              // 0 when the library is missing or initialisation fails; never throws
  console.log(`${kind}: ${n} device(s)`);
  for (let i = 0; i < n; i++) found.push(`${kind}:${i}`);
}

for (const name of found) {
  const { kind, index } = parseDevice(name);
  const rt = openGpu(kind, index);             // retains the device's primary context
  const p = rt.properties(), mem = rt.memInfo();
  console.log(`${name}: ${p.name}, compute capability ${p.computeCapability.join('.')}, ${p.multiprocessors} SMs, ` +
    `${(mem.free / 2 ** 30).toFixed(1)} / ${(mem.total / 2 ** 30).toFixed(1)} GiB free`);
  rt.release();
}

if (found.length === 0) {
  // Opening a device anyway throws at once: a LibraryNotFoundError lists every path searched and the fix.
  try {
    openGpu('cuda', 0);
  } catch (e) {
    const why = e.name === 'LibraryNotFoundError' ? `${e.searched.length} places searched; install the driver or set ${e.env}` : e.message;
    console.log(`no GPU here: ${e.name} (${why})`);
  }
}
