// placeholder: the threads backend's communication worker
export {};
