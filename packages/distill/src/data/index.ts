// The tokenized data pipeline: document sources -> buildDataset (shards + index) -> TokenDataset -> PackedLoader.
export { textFileDocuments, jsonlDocuments, chatJsonlDocuments, sotuDocuments, sotuAddresses, DocumentSourceError } from './sources.js';
export type { ChatDocument, ChatJsonlOptions, Document, DocumentSource, JsonlOptions, SotuAddress, SotuOptions, TextDocument, TextFileOptions } from './sources.js';
export { encodeChat, encodeDocument } from './encode.js';
export type { EncodedDocument } from './encode.js';
export { buildDataset } from './builder.js';
export type { BuildDatasetOptions, BuildProgress, BuildResult, TokenizerFiles } from './builder.js';
export { DatasetFormatError, INDEX_FILE, SPLIT_RULE, documentHash, isHeldOut, tokenDtypeFor } from './format.js';
export type { DatasetIndex, ShardEntry, SplitEntry, SplitName, TokenDtype } from './format.js';
export { TokenDataset, TokenSplit } from './loader.js';
export { IGNORE_INDEX, PackedLoader } from './packed-loader.js';
export type { LoaderState, PackedBatch, PackedLoaderOptions } from './packed-loader.js';
