// Native memory that stays put, for the launch parameter block (params.ts). A JS ArrayBuffer's address is not
// ours to take, so the block is koffi.alloc'ed once and grown on demand; the driver copies the arguments during
// the launch call, so reusing it for the next launch is safe.
import koffi from 'koffi';
import { kernelParamBlock, type KernelParamType } from './params.js';

export class ParamScratch {
  private block: unknown = null;
  private base = 0n;
  private size = 0;

  /** Writes the parameter block for `args` and returns its address (the `void **kernelParams` to pass). */
  write(manifest: readonly KernelParamType[], args: readonly (number | bigint)[]): bigint {
    const need = 16 * Math.max(1, manifest.length); // pointer + at most 8 bytes of value per argument
    if (need > this.size) {
      this.dispose();
      this.size = Math.max(256, need);
      this.block = koffi.alloc('uint8_t', this.size);
      this.base = koffi.address(this.block);
    }
    const bytes = kernelParamBlock(manifest, args, this.base);
    new Uint8Array(koffi.view(this.block, this.size)).set(bytes);
    return this.base;
  }

  dispose(): void {
    if (this.block !== null) koffi.free(this.block);
    this.block = null;
    this.base = 0n;
    this.size = 0;
  }
}
