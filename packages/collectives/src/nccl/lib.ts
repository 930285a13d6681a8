// koffi binding of NCCL (libnccl.so.2) and RCCL (librccl.so): RCCL exports NCCL's API and enum values
// unchanged (it is hipified NCCL), so one declaration list serves both.
//
// ABI notes (see nccl.h):
//  - ncclUniqueId is `struct { char internal[128]; }` and ncclCommInitRank takes it BY VALUE. We declare the
//    member as uint8_t[128] with koffi's 'Typed' hint: same size and alignment as char[128], but koffi hands it
//    over as a Uint8Array both ways, where a char array would be decoded as a NUL-terminated string and lose
//    every byte after the first zero.
//  - ncclComm_t and cudaStream_t are pointers; device buffers are pointers. All cross as uintptr_t (bigint).
//  - Enums (ncclResult_t, ncclDataType_t, ncclRedOp_t) are int-sized.
import koffi, { type TypeObject } from 'koffi';
import type { CommDType, ReduceOp } from '../types.js';
import { loadLib, optionalFunc, type Fn } from './lookup.js';

export type NcclFlavor = 'nccl' | 'rccl';
export const UNIQUE_ID_BYTES = 128;

let uniqueIdType: TypeObject | undefined;
function uniqueIdStruct(): TypeObject {
  // anonymous: koffi type names are process-global, and this module may be loaded twice (dist + a bundle)
  uniqueIdType ??= koffi.struct({ internal: koffi.array('uint8_t', UNIQUE_ID_BYTES, 'Typed') });
  return uniqueIdType;
}

export const NCCL_RESULT: Readonly<Record<number, string>> = {
  0: 'ncclSuccess', 1: 'ncclUnhandledCudaError', 2: 'ncclSystemError', 3: 'ncclInternalError',
  4: 'ncclInvalidArgument', 5: 'ncclInvalidUsage', 6: 'ncclRemoteError', 7: 'ncclInProgress', 8: 'ncclTimeout',
};
export const NCCL_IN_PROGRESS = 7;

/** ncclDataType_t. bf16 (9) exists from NCCL 2.10 (and every RCCL that ships it under the same value). */
export const NCCL_DTYPE: Readonly<Record<CommDType, number>> = { u8: 1, i32: 2, f32: 7, f64: 8, bf16: 9 };
/** ncclRedOp_t. avg (4) exists from NCCL 2.10. */
export const NCCL_OP: Readonly<Record<ReduceOp, number>> = { sum: 0, max: 2, min: 3, avg: 4 };

export interface NcclLib {
  flavor: NcclFlavor;
  path: string;
  /** e.g. 22105 for 2.21.5 (NCCL_VERSION_CODE encoding) */
  version: number;
  f: Record<string, Fn>;
  /** Optional entry points (absent in older releases). */
  split?: Fn;
  lastError?: Fn;
  errorString(code: number): string;
  uniqueIdStruct: TypeObject;
}

const cache = new Map<string, NcclLib>();

export function loadNccl(flavor: NcclFlavor): NcclLib {
  const { lib, path } = loadLib(flavor);
  const hit = cache.get(`${flavor}:${path}`);
  if (hit) return hit;
  const U = uniqueIdStruct();
  const f: Record<string, Fn> = {
    ncclGetVersion: lib.func('int ncclGetVersion(_Out_ int *version)'),
    ncclGetUniqueId: lib.func('ncclGetUniqueId', 'int', [koffi.out(koffi.pointer(U))]),
    ncclCommInitRank: lib.func('ncclCommInitRank', 'int', [koffi.out(koffi.pointer('uintptr_t')), 'int', U, 'int']),
    ncclCommDestroy: lib.func('int ncclCommDestroy(uintptr_t comm)'),
    ncclCommAbort: lib.func('int ncclCommAbort(uintptr_t comm)'),
    ncclCommGetAsyncError: lib.func('int ncclCommGetAsyncError(uintptr_t comm, _Out_ int *asyncError)'),
    ncclGetErrorString: lib.func('const char *ncclGetErrorString(int result)'),
    ncclAllReduce: lib.func('int ncclAllReduce(uintptr_t sendbuff, uintptr_t recvbuff, size_t count, int datatype, int op, uintptr_t comm, uintptr_t stream)'),
    ncclAllGather: lib.func('int ncclAllGather(uintptr_t sendbuff, uintptr_t recvbuff, size_t sendcount, int datatype, uintptr_t comm, uintptr_t stream)'),
    ncclReduceScatter: lib.func('int ncclReduceScatter(uintptr_t sendbuff, uintptr_t recvbuff, size_t recvcount, int datatype, int op, uintptr_t comm, uintptr_t stream)'),
    ncclBroadcast: lib.func('int ncclBroadcast(uintptr_t sendbuff, uintptr_t recvbuff, size_t count, int datatype, int root, uintptr_t comm, uintptr_t stream)'),
    ncclSend: lib.func('int ncclSend(uintptr_t sendbuff, size_t count, int datatype, int peer, uintptr_t comm, uintptr_t stream)'),
    ncclRecv: lib.func('int ncclRecv(uintptr_t recvbuff, size_t count, int datatype, int peer, uintptr_t comm, uintptr_t stream)'),
    ncclGroupStart: lib.func('int ncclGroupStart()'),
    ncclGroupEnd: lib.func('int ncclGroupEnd()'),
    ncclCommCount: lib.func('int ncclCommCount(uintptr_t comm, _Out_ int *count)'),
    ncclCommUserRank: lib.func('int ncclCommUserRank(uintptr_t comm, _Out_ int *rank)'),
  };
  const v = [0];
  f.ncclGetVersion!(v);
  const errorString = (code: number): string => String(f.ncclGetErrorString!(code) ?? `ncclResult_t ${code}`);
  const bound: NcclLib = {
    flavor, path, version: v[0]!, f, errorString, uniqueIdStruct: U,
    // ncclCommSplit(comm, color, key, ncclComm_t *newcomm, ncclConfig_t *config): NCCL >= 2.18
    split: optionalFunc(lib, 'int ncclCommSplit(uintptr_t comm, int color, int key, _Out_ uintptr_t *newcomm, void *config)'),
    lastError: optionalFunc(lib, 'const char *ncclGetLastError(uintptr_t comm)'),
  };
  cache.set(`${flavor}:${path}`, bound);
  return bound;
}

/** Decodes NCCL_VERSION_CODE: 2.8.4 = 2804 (old scheme), 2.21.5 = 22105. */
export function versionString(code: number): string {
  return code >= 10000
    ? `${Math.floor(code / 10000)}.${Math.floor(code / 100) % 100}.${code % 100}`
    : `${Math.floor(code / 1000)}.${Math.floor(code / 100) % 10}.${code % 100}`;
}

/** A fresh 128-byte unique id from ncclGetUniqueId (rank 0's job; share the bytes with every other rank). */
export function getUniqueId(flavor: NcclFlavor = 'nccl'): Uint8Array {
  const lib = loadNccl(flavor);
  const out: { internal?: Uint8Array }[] = [{}];
  const r = lib.f.ncclGetUniqueId!(out) as number;
  if (r !== 0) throw new Error(`ncclGetUniqueId failed: ${lib.errorString(r)}`);
  return new Uint8Array(out[0]!.internal!);
}
