// @farskip/models: Hugging Face MoE families (config.json + safetensors), tokenizers, generation, conversion.
export { ARCHITECTURES, parseConfig } from './config.js';
export type { Family, LayerSpec, MlaSpec, ModelSpec } from './config.js';
export { CausalLM } from './model.js';
export type { ForwardOptions, LoadOptions } from './model.js';
export { MlaAttention } from './mla.js';
export type { MlaWeights } from './mla.js';
export { WeightReader, moeNames, stackExperts } from './weights.js';
export type { Initializer, TensorSource } from './weights.js';
export { MAX_HEADER_BYTES, SAFETENSORS_DTYPE_BYTES, isSafetensorsDType, parseSafetensorsHeader, SafetensorsFile, SafetensorsCheckpoint, INDEX_FILE_NAME, SINGLE_FILE_NAME, writeSafetensors, writeShardedCheckpoint } from './safetensors/index.js';
export type { SafetensorsDType, SafetensorsHeader, TensorEntry, ReadAs, ReadOptions, SafetensorsTensorInfo, TensorSet, WriteSafetensorsOptions, ShardedCheckpointOptions, ShardedCheckpointResult } from './safetensors/index.js';
export { attachKVCaches, generate, sample, withoutGrad } from './generate.js';
export type { GenerateOptions, GenerateResult, SamplingOptions } from './generate.js';
export { convertToFarSkip, configWithFarSkip } from './convert.js';
export { loadModel, saveModel, saveModelFromRanks } from './io.js';
export type { SaveOptions } from './io.js';
export * from './tokenizer/index.js';
