// placeholder: filled in by the launch backend work
export {};
