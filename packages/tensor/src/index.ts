// @farskip/tensor: tensors and the autograd engine. No maths of its own beyond data movement; the
// differentiable ops live in @farskip/kernels.
export { Tensor, tensor } from './tensor.js';
export type { TensorOptions, NestedArray } from './tensor.js';
export { DTYPES, allocate, allocateUninitialized, bytesPerElement, convertArray, dtypeOfArray, isFloatDType, f32ToBf16Bits, bf16BitsToF32 } from './dtype.js';
export type { DType, FloatDType, TypedArray, DTypeArrays } from './dtype.js';
export { parseDevice } from './device.js';
export type { Device } from './device.js';
// GPU devices: per-device runtime, caching allocator and streams behind cuda:N / hip:N tensors
export { DeviceContext, DeviceStorage, deviceContext, releaseDeviceContexts, useDeviceRuntime } from './device-context.js';
export { deviceDataError } from './device-data.js';
export { broadcastShapes, formatShape, normDim, numelOf, sameShape, stridesOf } from './shape.js';
export type { Shape } from './shape.js';
export { Node, isGradEnabled, noGrad, recordOp, runBackward, setGradEnabled } from './autograd.js';
export type { BackwardFn, BackwardOptions, GradList, RecordOptions } from './autograd.js';
export { registerEngineOps } from './registry.js';
export type { EngineOps } from './registry.js';
export { cat, split, indexSelect, indexAdd, gather, scatterAdd, sumToShape } from './views.js';
export { gradcheck } from './gradcheck.js';
export type { GradcheckOptions, GradcheckResult } from './gradcheck.js';
export { Random } from './random.js';
