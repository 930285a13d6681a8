// A small tensor + kernels program that must run unchanged under Node, Bun and Deno, from the packages' ESM
// builds. Prints one JSON line: the runtime, the kernel backend and library it got, and the numbers.
import * as tensor from '@farskip/tensor';
import * as kernels from '@farskip/kernels';
import run from './tensor-kernels-program.cjs';

console.log(JSON.stringify({ format: 'esm', ...(await run(tensor, kernels)) }));
