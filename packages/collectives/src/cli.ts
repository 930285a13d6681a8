#!/usr/bin/env node
// placeholder: farskip-launch CLI
export {};
