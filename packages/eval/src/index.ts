// @farskip/eval
export {};
