// Tokenizers: Hugging Face tokenizer.json / tokenizer_config.json loading, chat templates, byte-level BPE training.
export { Tokenizer, TokenizerLoadError, ChatTemplateError } from './tokenizer.js';
export type {
  ChatMessage,
  ChatTemplateOptions,
  ChatTemplateSpec,
  DecodeOptions,
  EncodeOptions,
  SpecialTokenValue,
  TokenizerConfig,
} from './tokenizer.js';
export { trainByteLevelBpe, saveTokenizer, BYTE_TO_UNICODE, BYTE_LEVEL_ALPHABET, GPT2_SPLIT_PATTERN } from './bpe-trainer.js';
export type { AddedTokenJson, ByteLevelBpeTokenizerJson, SavedTokenizerPaths, TrainByteLevelBpeOptions } from './bpe-trainer.js';
