// placeholder: filled in by the nccl backend work
export {};
