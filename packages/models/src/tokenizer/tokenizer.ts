// Hugging Face tokenizer (tokenizer.json + tokenizer_config.json) on top of @huggingface/tokenizers, with chat
// templates rendered by @huggingface/jinja (trim_blocks / lstrip_blocks, as transformers renders them).

import { existsSync, readFileSync, statSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { Tokenizer as HFTokenizer } from '@huggingface/tokenizers';
import { Template } from '@huggingface/jinja';

/** A tokenizer_config.json special-token entry: a string, or the serialized AddedToken form `{ content, ... }`. */
export type SpecialTokenValue = string | { content: string; [key: string]: unknown } | null;

export type ChatTemplateSpec = string | { name: string; template: string }[] | Record<string, string>;

/** The tokenizer_config.json fields this class reads (everything else is passed through to the tokenizer). */
export interface TokenizerConfig {
  chat_template?: ChatTemplateSpec | null;
  bos_token?: SpecialTokenValue;
  eos_token?: SpecialTokenValue;
  pad_token?: SpecialTokenValue;
  unk_token?: SpecialTokenValue;
  /** true: encode() prepends bos when the post-processor does not; false: drops a bos the post-processor added */
  add_bos_token?: boolean;
  /** like add_bos_token, for eos at the end */
  add_eos_token?: boolean;
  /** decode() cleanup of spaces before punctuation (" ." -> "."); default false */
  clean_up_tokenization_spaces?: boolean;
  [key: string]: unknown;
}

export interface ChatMessage {
  role: string;
  content: string;
  [key: string]: unknown;
}

export interface EncodeOptions {
  /** run the post-processor (and add_bos_token / add_eos_token); default true */
  addSpecialTokens?: boolean;
}

export interface DecodeOptions {
  /** drop special tokens (added tokens marked special); default false */
  skipSpecialTokens?: boolean;
}

export interface ChatTemplateOptions {
  /** end with the header of an assistant turn */
  addGenerationPrompt?: boolean;
  /** tool (function) schemas, available to the template as `tools` */
  tools?: unknown[];
  /** which named template to use when chat_template is a list; default 'tool_use' with tools (if present), else 'default' */
  templateName?: string;
  /** extra template variables (e.g. { enable_thinking: false }) */
  extra?: Record<string, unknown>;
}

/** A tokenizer file that is missing, unreadable, not JSON, or not a tokenizer; `file` names it. */
export class TokenizerLoadError extends Error {
  constructor(
    message: string,
    readonly file: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'TokenizerLoadError';
  }
}

/** No chat template, a template that does not parse, or one that fails (raise_exception) while rendering. */
export class ChatTemplateError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ChatTemplateError';
  }
}

const errorMessage = (e: unknown): string => (e instanceof Error ? e.message : String(e));

function parseJson(text: string, file: string, what: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new TokenizerLoadError(`invalid JSON in ${what} ${file}: ${errorMessage(e)}`, file, { cause: e });
  }
}

function asObject(value: unknown, file: string, what: string): Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new TokenizerLoadError(`${what} ${file} is not a JSON object`, file);
  }
  return value as Record<string, unknown>;
}

function tokenContent(value: unknown): string | null {
  if (typeof value === 'string') return value;
  if (value !== null && typeof value === 'object' && typeof (value as { content?: unknown }).content === 'string') {
    return (value as { content: string }).content;
  }
  return null;
}

/** The file paths of a tokenizer directory (or of a tokenizer.json path given directly). */
function tokenizerPaths(path: string, isFile: boolean): { dir: string; tokenizerFile: string } {
  return isFile ? { dir: dirname(path), tokenizerFile: path } : { dir: path, tokenizerFile: join(path, 'tokenizer.json') };
}

interface RawFiles {
  tokenizerFile: string;
  tokenizerText: string;
  configFile: string;
  configText: string | null;
  /** chat_template.jinja / chat_template.json (newer transformers save the template outside the config) */
  templateFile: string | null;
  templateText: string | null;
}

function fromRawFiles(raw: RawFiles): Tokenizer {
  const json = asObject(parseJson(raw.tokenizerText, raw.tokenizerFile, 'tokenizer file'), raw.tokenizerFile, 'tokenizer file');
  let config: TokenizerConfig = {};
  if (raw.configText !== null) {
    config = asObject(parseJson(raw.configText, raw.configFile, 'tokenizer config'), raw.configFile, 'tokenizer config') as TokenizerConfig;
  }
  if (config.chat_template == null && raw.templateFile !== null && raw.templateText !== null) {
    if (raw.templateFile.endsWith('.jinja')) {
      config = { ...config, chat_template: raw.templateText };
    } else {
      const t = asObject(parseJson(raw.templateText, raw.templateFile, 'chat template file'), raw.templateFile, 'chat template file');
      config = { ...config, chat_template: t.chat_template as ChatTemplateSpec };
    }
  }
  return Tokenizer.fromObjects(json, config, raw.tokenizerFile);
}

const TEMPLATE_FILES = ['chat_template.jinja', 'chat_template.json'];

export class Tokenizer {
  /** the underlying @huggingface/tokenizers instance */
  readonly hf: HFTokenizer;
  readonly config: Readonly<TokenizerConfig>;
  readonly bosToken: string | null;
  readonly eosToken: string | null;
  readonly padToken: string | null;
  readonly unkToken: string | null;
  readonly bosId: number | null;
  readonly eosId: number | null;
  readonly padId: number | null;
  readonly unkId: number | null;
  private readonly templates = new Map<string, Template>();

  /**
   * @param tokenizerJson the parsed tokenizer.json
   * @param tokenizerConfig the parsed tokenizer_config.json (optional)
   * @param source where tokenizerJson came from, for error messages
   */
  constructor(tokenizerJson: object, tokenizerConfig: TokenizerConfig | null = null, source = 'tokenizer.json') {
    const json = asObject(tokenizerJson, source, 'tokenizer file');
    const model = json.model;
    if (model === null || typeof model !== 'object') {
      throw new TokenizerLoadError(`tokenizer file ${source} has no "model" section`, source);
    }
    const config: TokenizerConfig = { ...(tokenizerConfig ?? {}) };
    try {
      this.hf = new HFTokenizer({ ...json, added_tokens: Array.isArray(json.added_tokens) ? json.added_tokens : [] }, config);
    } catch (e) {
      throw new TokenizerLoadError(`cannot build a tokenizer from ${source}: ${errorMessage(e)}`, source, { cause: e });
    }
    this.config = config;
    const lookup = (value: unknown): [string | null, number | null] => {
      const token = tokenContent(value);
      return [token, token === null ? null : (this.hf.token_to_id(token) ?? null)];
    };
    [this.bosToken, this.bosId] = lookup(config.bos_token);
    [this.eosToken, this.eosId] = lookup(config.eos_token);
    [this.padToken, this.padId] = lookup(config.pad_token);
    [this.unkToken, this.unkId] = lookup(config.unk_token ?? (model as { unk_token?: unknown }).unk_token);
  }

  /** Builds a tokenizer from parsed tokenizer.json (+ tokenizer_config.json) objects. */
  static fromObjects(tokenizerJson: object, tokenizerConfig?: TokenizerConfig | null, source?: string): Tokenizer {
    return new Tokenizer(tokenizerJson, tokenizerConfig ?? null, source);
  }

  /**
   * Loads `<dir>/tokenizer.json` and, when present, `<dir>/tokenizer_config.json` (and chat_template.jinja /
   * chat_template.json when the config has no template). `path` may also be the tokenizer.json file itself.
   */
  static async fromDir(path: string): Promise<Tokenizer> {
    const isFile = await stat(path).then((s) => s.isFile(), () => false);
    const { dir, tokenizerFile } = tokenizerPaths(path, isFile);
    const read = async (file: string, what: string, required: boolean): Promise<string | null> => {
      try {
        return await readFile(file, 'utf8');
      } catch (e) {
        if (!required && (e as NodeJS.ErrnoException).code === 'ENOENT') return null;
        throw new TokenizerLoadError(`cannot read ${what} ${file}: ${errorMessage(e)}`, file, { cause: e });
      }
    };
    const tokenizerText = (await read(tokenizerFile, 'tokenizer file', true))!;
    const configFile = join(dir, 'tokenizer_config.json');
    const configText = await read(configFile, 'tokenizer config', false);
    let templateFile: string | null = null;
    let templateText: string | null = null;
    for (const name of TEMPLATE_FILES) {
      const text = await read(join(dir, name), 'chat template file', false);
      if (text !== null) {
        templateFile = join(dir, name);
        templateText = text;
        break;
      }
    }
    return fromRawFiles({ tokenizerFile, tokenizerText, configFile, configText, templateFile, templateText });
  }

  /** Synchronous `fromDir`. */
  static fromDirSync(path: string): Tokenizer {
    const isFile = existsSync(path) && statSync(path).isFile();
    const { dir, tokenizerFile } = tokenizerPaths(path, isFile);
    const read = (file: string, what: string, required: boolean): string | null => {
      try {
        return readFileSync(file, 'utf8');
      } catch (e) {
        if (!required && (e as NodeJS.ErrnoException).code === 'ENOENT') return null;
        throw new TokenizerLoadError(`cannot read ${what} ${file}: ${errorMessage(e)}`, file, { cause: e });
      }
    };
    const tokenizerText = read(tokenizerFile, 'tokenizer file', true)!;
    const configFile = join(dir, 'tokenizer_config.json');
    const configText = read(configFile, 'tokenizer config', false);
    let templateFile: string | null = null;
    let templateText: string | null = null;
    for (const name of TEMPLATE_FILES) {
      const text = read(join(dir, name), 'chat template file', false);
      if (text !== null) {
        templateFile = join(dir, name);
        templateText = text;
        break;
      }
    }
    return fromRawFiles({ tokenizerFile, tokenizerText, configFile, configText, templateFile, templateText });
  }

  /** Number of token ids: one past the largest id of the model vocabulary and the added tokens. */
  get vocabSize(): number {
    return this.hf.model!.vocab.length;
  }

  /** Text -> ids. With addSpecialTokens (default), the post-processor runs and add_bos_token/add_eos_token apply. */
  encode(text: string, options: EncodeOptions = {}): number[] {
    const addSpecialTokens = options.addSpecialTokens ?? true;
    const ids = this.hf.encode(text, { add_special_tokens: addSpecialTokens }).ids;
    if (!addSpecialTokens) return ids;
    const { add_bos_token: addBos, add_eos_token: addEos } = this.config;
    const bos = typeof addBos === 'boolean' ? this.bosId : null;
    const eos = typeof addEos === 'boolean' ? this.eosId : null;
    // nothing to add and nothing the post-processor may have added that must go
    if ((bos === null || (!addBos && ids[0] !== bos)) && (eos === null || (!addEos && ids[ids.length - 1] !== eos))) {
      return ids;
    }
    // ids = prefix + plain + suffix, where prefix/suffix come from the post-processor
    const plain = this.hf.encode(text, { add_special_tokens: false }).ids;
    const extra = ids.length - plain.length;
    let prefix = 0;
    while (prefix < extra && !plain.every((id, i) => ids[prefix + i] === id)) prefix++;
    const suffix = extra - prefix;
    let head = ids.slice(0, prefix);
    let tail = ids.slice(ids.length - suffix);
    if (bos !== null) {
      const added = head[0] === bos;
      if (addBos && !added) head = [bos, ...head];
      else if (!addBos && added) head = head.slice(1);
    }
    if (eos !== null) {
      const added = tail[tail.length - 1] === eos;
      if (addEos && !added) tail = [...tail, eos];
      else if (!addEos && added) tail = tail.slice(0, -1);
    }
    return [...head, ...plain, ...tail];
  }

  /** Text -> token strings (no special tokens added). */
  tokenize(text: string): string[] {
    return this.hf.tokenize(text, { add_special_tokens: false });
  }

  /** Ids -> text. Ids outside the vocabulary are skipped. */
  decode(ids: ArrayLike<number>, options: DecodeOptions = {}): string {
    const size = this.vocabSize;
    const known: number[] = [];
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      if (Number.isInteger(id) && id >= 0 && id < size && this.hf.model!.vocab[id] !== undefined) known.push(id);
    }
    if (known.length === 0) return '';
    return this.hf.decode(known, {
      skip_special_tokens: options.skipSpecialTokens ?? false,
      clean_up_tokenization_spaces: this.config.clean_up_tokenization_spaces ?? false,
    });
  }

  tokenToId(token: string): number | undefined {
    return this.hf.token_to_id(token);
  }

  idToToken(id: number): string | undefined {
    return this.hf.id_to_token(id);
  }

  /** Whether tokenizer_config provides a chat template. */
  get hasChatTemplate(): boolean {
    const t = this.config.chat_template;
    return t != null && (typeof t === 'string' || (Array.isArray(t) ? t.length > 0 : Object.keys(t).length > 0));
  }

  /** Picks the template text as transformers does (named list/dict: explicit name, 'tool_use' with tools, 'default'). */
  private templateSource(options: ChatTemplateOptions): [string, string] {
    const spec = this.config.chat_template;
    if (spec == null || (typeof spec === 'string' && spec.length === 0)) {
      throw new ChatTemplateError('this tokenizer has no chat template (no chat_template in tokenizer_config.json)');
    }
    if (typeof spec === 'string') return ['default', spec];
    const named = new Map<string, string>(
      Array.isArray(spec) ? spec.map((t) => [t.name, t.template] as [string, string]) : Object.entries(spec),
    );
    const name =
      options.templateName ?? (options.tools !== undefined && named.has('tool_use') ? 'tool_use' : 'default');
    const source = named.get(name);
    if (source === undefined) {
      throw new ChatTemplateError(
        `chat template '${name}' not found; the tokenizer has: ${[...named.keys()].map((n) => `'${n}'`).join(', ') || 'none'}`,
      );
    }
    return [name, source];
  }

  /**
   * Renders `messages` with the tokenizer's chat template. Variables: messages, add_generation_prompt, tools (when
   * given), bos_token / eos_token / pad_token / unk_token, `extra`; `raise_exception(msg)` and `strftime_now(fmt)`
   * are available to the template. Errors (no template, syntax, raise_exception) are ChatTemplateError.
   */
  applyChatTemplate(messages: readonly ChatMessage[], options: ChatTemplateOptions = {}): string {
    const [name, source] = this.templateSource(options);
    let template = this.templates.get(name);
    if (template === undefined) {
      try {
        template = new Template(source);
      } catch (e) {
        throw new ChatTemplateError(`chat template '${name}' does not parse: ${errorMessage(e)}`, { cause: e });
      }
      this.templates.set(name, template);
    }
    const vars: Record<string, unknown> = {
      ...(options.extra ?? {}),
      messages,
      add_generation_prompt: options.addGenerationPrompt ?? false,
      bos_token: this.bosToken ?? '',
      eos_token: this.eosToken ?? '',
      pad_token: this.padToken ?? '',
      unk_token: this.unkToken ?? '',
    };
    if (options.tools !== undefined) vars.tools = options.tools;
    try {
      return template.render(vars);
    } catch (e) {
      throw new ChatTemplateError(`chat template '${name}' failed: ${errorMessage(e)}`, { cause: e });
    }
  }

  toString(): string {
    return `Tokenizer(vocabSize=${this.vocabSize}${this.config.name_or_path ? `, ${basename(String(this.config.name_or_path))}` : ''})`;
  }
}
