// Safetensors: our own reader and writer for the format and for Hugging Face checkpoint directories.
export { MAX_HEADER_BYTES, SAFETENSORS_DTYPE_BYTES, isSafetensorsDType, parseSafetensorsHeader } from './format.js';
export type { SafetensorsDType, SafetensorsHeader, TensorEntry } from './format.js';
export type { ReadAs } from './decode.js';
export { SafetensorsFile } from './read.js';
export type { ReadOptions, SafetensorsTensorInfo } from './read.js';
export { INDEX_FILE_NAME, SINGLE_FILE_NAME, SafetensorsCheckpoint } from './checkpoint.js';
export { writeSafetensors, writeShardedCheckpoint } from './write.js';
export type { ShardedCheckpointOptions, ShardedCheckpointResult, TensorSet, WriteSafetensorsOptions } from './write.js';
