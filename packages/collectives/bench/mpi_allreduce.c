// Reference timing for the mpi backend benchmark (bench/mpi.mjs): MPI_Allreduce, MPI_Iallreduce + MPI_Wait,
// MPI_Alltoall and MPI_Ialltoall + MPI_Wait on float buffers of 1 KiB .. 64 MiB (x4 steps), plus memcpy bandwidth
// as the ceiling. Rank 0 prints one JSON object: {"memcpyGBs":..,"ranks":..,"sizes":[{"bytes":..,"iters":..,
// "allreduceUs":..,"iallreduceUs":..,"alltoallUs":..,"ialltoallUs":..}]}.
// Build: mpicc -O2 -o mpi_allreduce mpi_allreduce.c
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int iters_for(size_t bytes) {
  size_t n = (size_t)(128u << 20) / (bytes < 4096 ? 4096 : bytes);
  return n < 5 ? 5 : n > 1000 ? 1000 : (int)n;
}

int main(int argc, char **argv) {
  int provided, rank, size;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  const size_t maxBytes = (size_t)64 << 20;
  float *buf = malloc(maxBytes), *dst = malloc(maxBytes);
  for (size_t i = 0; i < maxBytes / 4; i++) buf[i] = dst[i] = 1.0f;
  double t0 = MPI_Wtime();
  double best = 1e9;
  for (int k = 0; k < 5; k++) {
    t0 = MPI_Wtime();
    memcpy(dst, buf, maxBytes);
    double dt = MPI_Wtime() - t0;
    if (dt < best) best = dt;
  }
  double memcpyGBs = maxBytes / best / 1e9;
  if (rank == 0) printf("{\"memcpyGBs\":%.3f,\"ranks\":%d,\"sizes\":[", memcpyGBs, size);
  int first = 1;
  for (size_t bytes = 1024; bytes <= maxBytes; bytes *= 4) {
    int count = (int)(bytes / 4), iters = iters_for(bytes);
    for (int k = 0; k < 2; k++) MPI_Allreduce(MPI_IN_PLACE, buf, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    MPI_Barrier(MPI_COMM_WORLD);
    t0 = MPI_Wtime();
    for (int k = 0; k < iters; k++) MPI_Allreduce(MPI_IN_PLACE, buf, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    double blocking = (MPI_Wtime() - t0) / iters;
    MPI_Barrier(MPI_COMM_WORLD);
    t0 = MPI_Wtime();
    for (int k = 0; k < iters; k++) {
      MPI_Request rq;
      MPI_Iallreduce(MPI_IN_PLACE, buf, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &rq);
      MPI_Wait(&rq, MPI_STATUS_IGNORE);
    }
    double nonblocking = (MPI_Wtime() - t0) / iters;
    int per = count / size;
    MPI_Alltoall(buf, per, MPI_FLOAT, dst, per, MPI_FLOAT, MPI_COMM_WORLD);
    MPI_Barrier(MPI_COMM_WORLD);
    t0 = MPI_Wtime();
    for (int k = 0; k < iters; k++) MPI_Alltoall(buf, per, MPI_FLOAT, dst, per, MPI_FLOAT, MPI_COMM_WORLD);
    double a2a = (MPI_Wtime() - t0) / iters;
    MPI_Barrier(MPI_COMM_WORLD);
    t0 = MPI_Wtime();
    for (int k = 0; k < iters; k++) {
      MPI_Request rq;
      MPI_Ialltoall(buf, per, MPI_FLOAT, dst, per, MPI_FLOAT, MPI_COMM_WORLD, &rq);
      MPI_Wait(&rq, MPI_STATUS_IGNORE);
    }
    double ia2a = (MPI_Wtime() - t0) / iters;
    if (rank == 0) {
      printf("%s{\"bytes\":%zu,\"iters\":%d,\"allreduceUs\":%.3f,\"iallreduceUs\":%.3f,\"alltoallUs\":%.3f,\"ialltoallUs\":%.3f}",
             first ? "" : ",", bytes, iters, blocking * 1e6, nonblocking * 1e6, a2a * 1e6, ia2a * 1e6);
      first = 0;
    }
  }
  if (rank == 0) printf("]}\n");
  free(buf);
  free(dst);
  MPI_Finalize();
  return 0;
}
