// A native compute loop for the overlap measurement in bench/mpi.mjs (called synchronously through koffi on the
// rank's main thread, as a CPU kernel would be). Build: cc -O2 -shared -fPIC -o libbusy.so busy.c
double fs_bench_spin(long iters) {
  double a = 1.0, b = 1e-9;
  for (long i = 0; i < iters; i++) a = a * (1.0 + b) + b;
  return a;
}
