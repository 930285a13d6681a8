// placeholder: filled in by the mpi backend work
export {};
