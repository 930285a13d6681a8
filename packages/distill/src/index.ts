// @farskip/distill
export {};
