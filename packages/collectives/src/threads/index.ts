// placeholder: filled in by the threads backend work
export {};
