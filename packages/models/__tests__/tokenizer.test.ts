// Tokenizer against hand-computed goldens: a tiny GPT-2-style byte-level BPE (fixtures/tokenizer/tiny-bpe: the 256
// GPT-2 byte symbols in GPT-2 vocab.json order, 15 hand-picked merges, <|endoftext|>) and published chat templates
// (Qwen2.5-Instruct's, Mixtral-8x7B-Instruct-v0.1's). Expected ids come from the BPE rules, worked by hand:
//   byte ids (GPT-2 order): 0x21..0x7E -> b-33, 0xA1..0xAC -> b-67, 0xAE..0xFF -> b-68, 0x00..0x20 -> 188+b,
//   0x7F..0xA0 -> b+94, 0xAD -> 255 (so ' ' = 'Ġ' = 220, '\n' = 'Ċ' = 198, as in GPT-2)
//   merges (rank: pair -> id): 0 Ġ t->256, 1 h e->257, 2 Ġt he->258, 3 l l->259, 4 e ll->260, 5 he ll->261,
//   6 hell o->262, 7 Ġ w->263, 8 o r->264, 9 Ġw or->265, 10 l d->266, 11 Ġwor ld->267, 12 Ã ©->268 ('é'),
//   13 Ċ Ċ->269, 14 Ġ Ġ->270; <|endoftext|> = 271.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { ChatTemplateError, Tokenizer, TokenizerLoadError } from '../src/tokenizer/index.js';
import type { ChatMessage, TokenizerConfig } from '../src/tokenizer/index.js';

const FIXTURES = fileURLToPath(new URL('./fixtures/tokenizer/', import.meta.url));
const TINY_DIR = join(FIXTURES, 'tiny-bpe');
const readJson = (path: string): Record<string, unknown> => JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
const tinyJson = (): Record<string, unknown> => readJson(join(TINY_DIR, 'tokenizer.json'));
const special = (id: number, content: string) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
/** tiny-bpe plus extra special tokens (ids 272, 273, ...) */
const withSpecials = (...contents: string[]): Record<string, unknown> => {
  const json = tinyJson();
  const added = json.added_tokens as object[];
  contents.forEach((c, i) => added.push(special(272 + i, c)));
  return json;
};

const temps: string[] = [];
const tempDir = (): string => {
  const d = mkdtempSync(join(tmpdir(), 'farskip-tok-'));
  temps.push(d);
  return d;
};
afterAll(() => temps.forEach((d) => rmSync(d, { recursive: true, force: true })));

describe('byte-level BPE golden (hand-computed)', () => {
  const tok = Tokenizer.fromDirSync(TINY_DIR);
  const golden: [string, number[]][] = [
    // h e l l o: rank 1 (h e) before rank 3 (l l), so 'e ll' (rank 4) never applies -> he ll -> hell -> hello
    ['hello world', [262, 267]],
    // "the" has no leading space: only h e merges; "  cell": \s+(?!\S) leaves one space alone, then " cell" =
    // Ġ c e ll -> Ġ c ell; "\nhello": a lone \n; trailing "\n\n" is one piece -> ĊĊ
    ['the  cell\nhello\n\n', [83, 257, 220, 220, 66, 260, 198, 262, 269]],
    // é = C3 A9 = 'Ã©' (merge 12); 🙂 = F0 9F 99 82 -> 172 253 247 224
    [' café 🙂', [220, 66, 64, 69, 268, 220, 172, 253, 247, 224]],
    // special token split out whole; " the" = Ġ t h e -> Ġt h e -> Ġt he -> Ġthe
    ['hello<|endoftext|> the', [262, 271, 258]],
    // contraction and digits: it | 's | " 42" (Ġ 4 2)
    ["it's 42", [72, 83, 6, 82, 220, 19, 17]],
    // three spaces before a word: "  " (ĠĠ) + " world"
    ['   world', [270, 267]],
  ];

  it.each(golden)('encode %j', (text, ids) => {
    expect(tok.encode(text)).toEqual(ids);
    expect(tok.encode(text, { addSpecialTokens: false })).toEqual(ids);
    expect(tok.decode(ids)).toBe(text);
  });

  it('vocabulary lookups', () => {
    expect(tok.vocabSize).toBe(272);
    expect(tok.tokenize('hello world')).toEqual(['hello', 'Ġworld']);
    expect(tok.tokenToId('Ġworld')).toBe(267);
    expect(tok.tokenToId('<|endoftext|>')).toBe(271);
    expect(tok.tokenToId('nope')).toBeUndefined();
    expect(tok.idToToken(220)).toBe('Ġ');
    expect(tok.idToToken(198)).toBe('Ċ');
    expect(tok.idToToken(268)).toBe('Ã©');
    expect([tok.bosId, tok.eosId, tok.padId]).toEqual([null, null, null]);
  });

  it('decode: skipSpecialTokens, empty input, unknown ids skipped, no space clean-up by default', () => {
    expect(tok.decode([262, 271, 258], { skipSpecialTokens: true })).toBe('hello the');
    expect(tok.decode([262, 271, 258])).toBe('hello<|endoftext|> the');
    expect(tok.decode([])).toBe('');
    expect(tok.decode([262, 99999, -1, 267])).toBe('hello world');
    expect(tok.decode(tok.encode('a . b , c'))).toBe('a . b , c');
    expect(tok.decode(Int32Array.from([262, 267]))).toBe('hello world');
  });

  it('loads from a directory, a tokenizer.json path, or objects, asynchronously or not', async () => {
    const viaFile = Tokenizer.fromDirSync(join(TINY_DIR, 'tokenizer.json'));
    const viaAsync = await Tokenizer.fromDir(TINY_DIR);
    const viaObjects = Tokenizer.fromObjects(tinyJson());
    // " hello" = Ġ hello (no 'Ġ h' merge)
    for (const t of [viaFile, viaAsync, viaObjects]) expect(t.encode(' café hello world')).toEqual([220, 66, 64, 69, 268, 220, 262, 267]);
  });
});

describe('add_bos_token / add_eos_token', () => {
  const templateProcessing = {
    type: 'TemplateProcessing',
    single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
    pair: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }],
    special_tokens: { '<s>': { id: '<s>', ids: [272], tokens: ['<s>'] } },
  };
  const llamaLike = (): Record<string, unknown> => ({ ...withSpecials('<s>', '</s>'), post_processor: templateProcessing });

  it('add_bos_token: true prepends bos when the post-processor does not', () => {
    const tok = Tokenizer.fromObjects(withSpecials('<s>', '</s>'), { bos_token: '<s>', eos_token: '</s>', add_bos_token: true });
    expect([tok.bosId, tok.eosId]).toEqual([272, 273]);
    expect(tok.encode('hello')).toEqual([272, 262]);
    expect(tok.encode('hello', { addSpecialTokens: false })).toEqual([262]);
  });

  it('the post-processor decides when the config does not say; add_bos_token: false drops its bos; add_eos_token appends', () => {
    expect(Tokenizer.fromObjects(llamaLike(), { bos_token: '<s>' }).encode('hello')).toEqual([272, 262]);
    expect(Tokenizer.fromObjects(llamaLike(), { bos_token: '<s>', add_bos_token: true }).encode('hello')).toEqual([272, 262]);
    expect(Tokenizer.fromObjects(llamaLike(), { bos_token: '<s>', add_bos_token: false }).encode('hello')).toEqual([262]);
    const both = Tokenizer.fromObjects(llamaLike(), { bos_token: '<s>', eos_token: '</s>', add_bos_token: true, add_eos_token: true });
    expect(both.encode('hello')).toEqual([272, 262, 273]);
    // a bos typed in the text is text, not the post-processor's
    expect(both.encode('<s>hello')).toEqual([272, 272, 262, 273]);
  });

  it('special tokens given in the serialized AddedToken form', () => {
    const tok = Tokenizer.fromObjects(withSpecials('<s>', '</s>'), { bos_token: { content: '<s>', __type: 'AddedToken' }, eos_token: { content: '</s>' } });
    expect([tok.bosToken, tok.bosId, tok.eosToken, tok.eosId]).toEqual(['<s>', 272, '</s>', 273]);
  });
});

describe('chat templates', () => {
  const qwenConfig = readJson(join(FIXTURES, 'qwen2.5', 'tokenizer_config.json')) as TokenizerConfig;
  const qwen = Tokenizer.fromObjects(withSpecials('<|im_start|>', '<|im_end|>'), qwenConfig);
  const mixtral = Tokenizer.fromObjects(withSpecials('<s>', '</s>'), readJson(join(FIXTURES, 'mixtral', 'tokenizer_config.json')) as TokenizerConfig);
  const conversation: ChatMessage[] = [
    { role: 'system', content: 'You are a helpful assistant.' },
    { role: 'user', content: 'What is 2+2?' },
    { role: 'assistant', content: '2+2 = 4.' },
  ];

  it('Qwen2.5 (ChatML): 3 messages, with and without the generation prompt', () => {
    const expected =
      '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' +
      '<|im_start|>user\nWhat is 2+2?<|im_end|>\n' +
      '<|im_start|>assistant\n2+2 = 4.<|im_end|>\n';
    expect(qwen.hasChatTemplate).toBe(true);
    expect(qwen.applyChatTemplate(conversation)).toBe(expected);
    expect(qwen.applyChatTemplate(conversation, { addGenerationPrompt: false })).toBe(expected);
    expect(qwen.applyChatTemplate(conversation, { addGenerationPrompt: true })).toBe(expected + '<|im_start|>assistant\n');
  });

  it('Qwen2.5: default system prompt when the conversation has none', () => {
    const msgs: ChatMessage[] = [
      { role: 'user', content: 'Hi' },
      { role: 'assistant', content: 'Hello!' },
      { role: 'user', content: 'Bye' },
    ];
    expect(qwen.applyChatTemplate(msgs, { addGenerationPrompt: true })).toBe(
      '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n' +
        '<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n' +
        '<|im_start|>assistant\n',
    );
  });

  it('Qwen2.5: tools, an assistant tool call and a tool response', () => {
    const tools = [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object', required: ['city'] } } }];
    const msgs: ChatMessage[] = [
      { role: 'user', content: 'Weather in Paris?' },
      { role: 'assistant', content: '', tool_calls: [{ type: 'function', function: { name: 'get_weather', arguments: { city: 'Paris' } } }] },
      { role: 'tool', content: '{"temp": 18}' },
    ];
    expect(qwen.applyChatTemplate(msgs, { tools, addGenerationPrompt: true })).toBe(
      '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.\n\n# Tools\n\n' +
        'You may call one or more functions to assist with the user query.\n\n' +
        'You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n' +
        '{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "required": ["city"]}}}\n' +
        '</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n' +
        '<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call><|im_end|>\n' +
        '<|im_start|>user\nWeather in Paris?<|im_end|>\n' +
        '<|im_start|>assistant\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call><|im_end|>\n' +
        '<|im_start|>user\n<tool_response>\n{"temp": 18}\n</tool_response><|im_end|>\n' +
        '<|im_start|>assistant\n',
    );
  });

  it('Qwen2.5: special tokens of the rendered prompt encode whole; eos/pad from the config', () => {
    expect([qwen.bosId, qwen.eosId, qwen.padId]).toEqual([null, 273, 271]);
    // "user" = u s e r (no merges), "\n" = 198, "hello" = 262
    expect(qwen.encode('<|im_start|>user\nhello<|im_end|>')).toEqual([272, 84, 82, 68, 81, 198, 262, 273]);
    const prompt = qwen.applyChatTemplate(conversation, { addGenerationPrompt: true });
    expect(qwen.decode(qwen.encode(prompt))).toBe(prompt);
    expect(qwen.encode(prompt).filter((id) => id === 272)).toHaveLength(4);
  });

  it('Mixtral (list of named templates): default with bos/eos, raise_exception, named selection', () => {
    const msgs: ChatMessage[] = [
      { role: 'user', content: 'Hi' },
      { role: 'assistant', content: 'Hello!' },
      { role: 'user', content: 'How are you?' },
    ];
    const expected = '<s>[INST] Hi [/INST]Hello!</s>[INST] How are you? [/INST]';
    expect(mixtral.applyChatTemplate(msgs)).toBe(expected);
    expect(mixtral.applyChatTemplate(msgs, { addGenerationPrompt: true })).toBe(expected);
    expect(mixtral.applyChatTemplate(msgs, { templateName: 'summary' })).toBe('<s>[SUMMARIZE] Hi | Hello! | How are you? [/SUMMARIZE]');
    expect(() => mixtral.applyChatTemplate(conversation)).toThrow(ChatTemplateError);
    expect(() => mixtral.applyChatTemplate(conversation)).toThrow('Conversation roles must alternate user/assistant/user/assistant/...');
    expect(() => mixtral.applyChatTemplate(msgs, { templateName: 'nope' })).toThrow(/'nope' not found.*'default', 'summary'/);
    // the rendered prompt already carries <s>: encoding it adds another only through add_bos_token (as transformers)
    expect(mixtral.encode(expected, { addSpecialTokens: false })[0]).toBe(272);
  });

  it('extra variables reach the template; a template that does not parse is a ChatTemplateError', () => {
    const t = Tokenizer.fromObjects(tinyJson(), { chat_template: '{{ greeting }}{% for m in messages %} {{ m.content }}{% endfor %}' });
    expect(t.applyChatTemplate([{ role: 'user', content: 'x' }], { extra: { greeting: 'hey' } })).toBe('hey x');
    const bad = Tokenizer.fromObjects(tinyJson(), { chat_template: '{% if %}' });
    expect(() => bad.applyChatTemplate([])).toThrow(/does not parse/);
  });
});

describe('errors', () => {
  it('missing tokenizer.json names the file', async () => {
    const dir = join(tempDir(), 'absent');
    const file = join(dir, 'tokenizer.json');
    await expect(Tokenizer.fromDir(dir)).rejects.toThrow(TokenizerLoadError);
    await expect(Tokenizer.fromDir(dir)).rejects.toThrow(file);
    expect(() => Tokenizer.fromDirSync(dir)).toThrow(file);
    try {
      Tokenizer.fromDirSync(dir);
    } catch (e) {
      expect((e as TokenizerLoadError).file).toBe(file);
    }
  });

  it('invalid JSON, a non-object and a non-tokenizer name the file', async () => {
    const dir = tempDir();
    const file = join(dir, 'tokenizer.json');
    writeFileSync(file, '{"model": {"type": "BPE", ');
    await expect(Tokenizer.fromDir(dir)).rejects.toThrow(`invalid JSON in tokenizer file ${file}`);
    writeFileSync(file, '[1, 2]');
    expect(() => Tokenizer.fromDirSync(dir)).toThrow(`tokenizer file ${file} is not a JSON object`);
    writeFileSync(file, '{"added_tokens": []}');
    expect(() => Tokenizer.fromDirSync(dir)).toThrow(`tokenizer file ${file} has no "model" section`);
    writeFileSync(file, '{"model": {"type": "NoSuchModel", "vocab": {}}}');
    expect(() => Tokenizer.fromDirSync(dir)).toThrow(`cannot build a tokenizer from ${file}`);
  });

  it('a corrupt tokenizer_config.json names that file; a missing one is fine', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'tokenizer.json'), readFileSync(join(TINY_DIR, 'tokenizer.json')));
    expect(Tokenizer.fromDirSync(dir).encode('hello')).toEqual([262]);
    writeFileSync(join(dir, 'tokenizer_config.json'), '{"eos_token": ');
    await expect(Tokenizer.fromDir(dir)).rejects.toThrow(`invalid JSON in tokenizer config ${join(dir, 'tokenizer_config.json')}`);
  });

  it('missing chat template', () => {
    const tok = Tokenizer.fromDirSync(TINY_DIR);
    expect(tok.hasChatTemplate).toBe(false);
    expect(() => tok.applyChatTemplate([{ role: 'user', content: 'hi' }])).toThrow(ChatTemplateError);
    expect(() => tok.applyChatTemplate([{ role: 'user', content: 'hi' }])).toThrow(/no chat template/);
  });

  it('chat_template.jinja next to the tokenizer is used when the config has none', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'tokenizer.json'), readFileSync(join(TINY_DIR, 'tokenizer.json')));
    writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({ eos_token: '<|endoftext|>' }));
    writeFileSync(join(dir, 'chat_template.jinja'), '{% for m in messages %}[{{ m.role }}] {{ m.content }}{{ eos_token }}{% endfor %}\n');
    const tok = await Tokenizer.fromDir(dir);
    expect(tok.eosId).toBe(271);
    expect(tok.applyChatTemplate([{ role: 'user', content: 'hi' }])).toBe('[user] hi<|endoftext|>');
  });
});
