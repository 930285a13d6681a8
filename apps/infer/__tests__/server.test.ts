// The OpenAI-compatible server on a real loopback port, exercised with fetch as clients do: completions (text,
// token ids, several prompts, n), chat with the tokenizer's template, SSE streaming equal to the whole response,
// logprobs + echo exactly as lm-evaluation-harness's local-completions parses them (against a float64
// log-softmax of the model's own forward), stop strings, concurrent requests, cancellation by disconnect,
// every class of bad request, and the operational endpoints.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generate, loadModel } from '@farskip/models';
import { Tensor } from '@farskip/tensor';
import { Engine, InferenceServer, loadForInference } from '../src/index.js';
import type { LoadedModel } from '../src/index.js';
import { writeTinyModel } from './fixture.js';

const dir = await writeTinyModel(join(mkdtempSync(join(tmpdir(), 'farskip-infer-server-')), 'model'));
let loaded: LoadedModel;
let engine: Engine;
let server: InferenceServer;
let url = '';
let run: Promise<void>;

beforeAll(async () => {
  loaded = loadForInference(dir, { id: 'tiny-moe' });
  engine = new Engine(loaded.model, { maxBatch: 3, maxModelLen: 96, maxQueue: 2 });
  run = engine.start();
  server = new InferenceServer(loaded, engine, { port: 0, maxBodyBytes: 4096, maxPromptTokens: 60, maxNewTokens: 40 });
  url = (await server.listen()).url;
});
afterAll(async () => {
  await server.close();
  await engine.stop();
  await run;
});

const post = async (path: string, body: unknown, init: RequestInit = {}): Promise<{ status: number; json: any; text: string }> => {
  const r = await fetch(url + path, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: typeof body === 'string' ? body : JSON.stringify(body), ...init });
  const text = await r.text();
  let json: any = null;
  try { json = JSON.parse(text); } catch { /* SSE or text */ }
  return { status: r.status, json, text };
};
const sse = (text: string): any[] => {
  const events = text.split('\n\n').filter(Boolean).map((e) => e.replace(/^data: /, ''));
  expect(events[events.length - 1]).toBe('[DONE]');
  return events.slice(0, -1).map((e) => JSON.parse(e));
};
const tok = () => loaded.tokenizer!;

/** What generate() of @farskip/models (a different code path: uniform cache, full logits) produces greedily. */
async function reference(prompt: number[], maxNewTokens: number): Promise<number[]> {
  return (await generate(loadModel(dir), [prompt], { maxNewTokens, stopTokens: loaded.stopTokens })).tokens[0]!;
}

function logSoftmax64(row: Float32Array): Float64Array {
  let mx = -Infinity;
  for (const v of row) mx = Math.max(mx, v);
  let s = 0;
  for (const v of row) s += Math.exp(v - mx);
  return Float64Array.from(row, (v) => v - mx - Math.log(s));
}

describe('completions', () => {
  it('text prompt, greedy: the text of generate()\'s tokens; usage counts', async () => {
    const prompt = 'The quick brown fox';
    const ids = tok().encode(prompt);
    const want = await reference(ids, 12);
    const raw = await fetch(url + '/v1/completions', { method: 'POST', body: JSON.stringify({ model: 'tiny-moe', prompt, max_tokens: 12, temperature: 0 }) });
    const timing = /engine;dur=([0-9.]+), total;dur=([0-9.]+)/.exec(raw.headers.get('server-timing') ?? '');
    expect(timing && Number(timing[2]) >= Number(timing[1])).toBe(true);
    const r = { status: raw.status, json: (await raw.json()) as any };
    expect(r.status).toBe(200);
    expect(r.json.object).toBe('text_completion');
    const stopped = loaded.stopTokens.includes(want[want.length - 1]!);
    expect(r.json.choices[0].text).toBe(tok().decode(stopped ? want.slice(0, -1) : want, { skipSpecialTokens: true }));
    expect(r.json.choices[0].finish_reason).toBe(stopped ? 'stop' : 'length');
    expect(r.json.usage).toEqual({ prompt_tokens: ids.length, completion_tokens: want.length - (stopped ? 1 : 0), total_tokens: ids.length + want.length - (stopped ? 1 : 0) });
  });

  it('token-id prompts, several at once and n = 2 with a seed: one choice per prompt and sample, in index order', async () => {
    const prompts = [[5, 17, 42], [9, 10]];
    const r = await post('/v1/completions', { model: 'tiny-moe', prompt: prompts, max_tokens: 5, temperature: 0.8, seed: 7, n: 2 });
    expect(r.status).toBe(200);
    expect(r.json.choices.map((c: any) => c.index)).toEqual([0, 1, 2, 3]);
    const again = await post('/v1/completions', { model: 'tiny-moe', prompt: prompts, max_tokens: 5, temperature: 0.8, seed: 7, n: 2 });
    expect(again.json.choices.map((c: any) => c.text)).toEqual(r.json.choices.map((c: any) => c.text));
    const greedy = await post('/v1/completions', { model: 'tiny-moe', prompt: prompts[1], max_tokens: 5, temperature: 0 });
    expect(greedy.json.choices[0].text).toBe(tok().decode(await reference(prompts[1]!, 5), { skipSpecialTokens: true }));
  });

  it('logprobs + echo as lm-evaluation-harness local-completions sends and parses them', async () => {
    const context = [5, 17, 42, 8, 99];
    const continuation = [13, 27, 61];
    const all = [...context, ...continuation];
    // the harness's loglikelihood payload, verbatim in shape
    const r = await post('/v1/completions', { model: 'tiny-moe', prompt: [all], temperature: 0, max_tokens: 1, logprobs: 1, seed: 1234, echo: true });
    expect(r.status).toBe(200);
    const choice = r.json.choices[0];
    const lp = choice.logprobs;
    expect(lp.tokens.length).toBe(all.length + 1); // echoed prompt + the one generated token
    expect(lp.token_logprobs[0]).toBeNull();
    expect(lp.top_logprobs[0]).toBeNull();
    // parse_logprobs: sum(token_logprobs[ctxlen:-1]), is_greedy = every token's logprob equals the best of its top
    const ctxlen = context.length;
    const sum = lp.token_logprobs.slice(ctxlen, -1).reduce((a: number, b: number) => a + b, 0);
    const isGreedy = lp.token_logprobs.slice(ctxlen, -1).every((v: number, i: number) => v === Math.max(...(Object.values(lp.top_logprobs.slice(ctxlen, -1)[i]) as number[])));
    // independent: the model's forward over the whole sequence, float64 log-softmax
    const V = loaded.model.spec.vocabSize;
    const logits = (await loadModel(dir).forward(new Tensor(Int32Array.from(all), [1, all.length], { dtype: 'i32' }))).data as Float32Array;
    let want = 0;
    let greedy = true;
    for (let t = ctxlen; t < all.length; t++) {
      const row = logSoftmax64(logits.subarray((t - 1) * V, t * V));
      want += row[all[t]!]!;
      greedy &&= row.every((v) => v <= row[all[t]!]!);
    }
    expect(Math.abs(sum - want)).toBeLessThan(1e-3);
    expect(isGreedy).toBe(greedy);
    expect(choice.text.startsWith(tok().decode(all))).toBe(true);
    expect(lp.text_offset[0]).toBe(0);
    // max_tokens 0: only the prompt, scored
    const r0 = await post('/v1/completions', { model: 'tiny-moe', prompt: all, max_tokens: 0, logprobs: 0, echo: true });
    expect(r0.json.choices[0].logprobs.tokens.length).toBe(all.length);
    expect(r0.json.usage.completion_tokens).toBe(0);
  });

  it('a greedy continuation whose tokens are the argmax is reported greedy by the harness rule', async () => {
    const context = [33, 2, 71];
    const cont = await reference(context, 3);
    const all = [...context, ...cont];
    const r = await post('/v1/completions', { model: 'tiny-moe', prompt: [all], temperature: 0, max_tokens: 1, logprobs: 1, echo: true });
    const lp = r.json.choices[0].logprobs;
    const ok = lp.token_logprobs.slice(3, -1).every((v: number, i: number) => v === Math.max(...(Object.values(lp.top_logprobs.slice(3, -1)[i]) as number[])));
    expect(ok).toBe(true);
  });

  it('stop strings cut the text before the stop and finish with stop', async () => {
    const ids = [5, 17, 42];
    const full = tok().decode(await reference(ids, 20), { skipSpecialTokens: true });
    const stop = full.slice(4, 6);
    expect(full.length).toBeGreaterThan(6);
    const r = await post('/v1/completions', { model: 'tiny-moe', prompt: ids, max_tokens: 20, temperature: 0, stop: [stop] });
    expect(r.json.choices[0].text).toBe(full.slice(0, full.indexOf(stop)));
    expect(r.json.choices[0].finish_reason).toBe('stop');
  });
});

describe('chat and streaming', () => {
  it('chat: the tokenizer\'s chat template, then the completion of generate()', async () => {
    const messages = [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: [{ type: 'text', text: 'Hello, world!' }] }];
    const text = tok().applyChatTemplate([{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hello, world!' }], { addGenerationPrompt: true });
    expect(text.endsWith('<|im_start|>assistant\n')).toBe(true);
    const ids = tok().encode(text, { addSpecialTokens: false });
    const want = await reference(ids, 10);
    const r = await post('/v1/chat/completions', { model: 'tiny-moe', messages, max_tokens: 10, temperature: 0, logprobs: true, top_logprobs: 2 });
    expect(r.status).toBe(200);
    expect(r.json.object).toBe('chat.completion');
    const stopped = loaded.stopTokens.includes(want[want.length - 1]!);
    expect(r.json.choices[0].message).toEqual({ role: 'assistant', content: tok().decode(stopped ? want.slice(0, -1) : want, { skipSpecialTokens: true }) });
    expect(r.json.usage.prompt_tokens).toBe(ids.length);
    const content = r.json.choices[0].logprobs.content;
    expect(content.length).toBe(want.length - (stopped ? 1 : 0));
    expect(content[0].top_logprobs.length).toBe(2);
    expect(content[0].logprob).toBeCloseTo(content[0].top_logprobs[0].logprob, 6); // greedy: the chosen token is the best
  });

  it('SSE: completions and chat chunks concatenate to the non-streamed text; usage on request; [DONE] last', async () => {
    const body = { model: 'tiny-moe', prompt: 'Hello, world!', max_tokens: 16, temperature: 0 };
    const whole = await post('/v1/completions', body);
    const s = await post('/v1/completions', { ...body, stream: true, stream_options: { include_usage: true } });
    expect(s.status).toBe(200);
    const events = sse(s.text);
    const usage = events.pop();
    expect(usage.usage).toEqual(whole.json.usage);
    expect(events.map((e) => e.choices[0].text).join('')).toBe(whole.json.choices[0].text);
    expect(events[events.length - 1].choices[0].finish_reason).toBe(whole.json.choices[0].finish_reason);
    const chatBody = { model: 'tiny-moe', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 8, temperature: 0 };
    const chat = await post('/v1/chat/completions', chatBody);
    const cs = sse((await post('/v1/chat/completions', { ...chatBody, stream: true })).text);
    expect(cs[0].choices[0].delta).toEqual({ role: 'assistant', content: '' });
    expect(cs.every((e) => e.object === 'chat.completion.chunk')).toBe(true);
    expect(cs.map((e) => e.choices[0].delta.content ?? '').join('')).toBe(chat.json.choices[0].message.content);
  });

  it('concurrent requests (more than the batch) each get what they get alone', async () => {
    const prompts = [[5, 17], [9], [33, 2, 71, 100], [250, 251, 3]];
    const alone = [];
    for (const p of prompts) alone.push((await post('/v1/completions', { model: 'tiny-moe', prompt: p, max_tokens: 10, temperature: 0 })).json.choices[0].text);
    const together = await Promise.all(prompts.map((p) => post('/v1/completions', { model: 'tiny-moe', prompt: p, max_tokens: 10, temperature: 0 })));
    expect(together.map((r) => r.json.choices[0].text)).toEqual(alone);
  });

  it('a client that disconnects mid-stream frees its slot (cancelled), and the server keeps serving', async () => {
    const before = engine.counters.decodeTokens;
    const ac = new AbortController();
    const r = await fetch(url + '/v1/completions', { method: 'POST', body: JSON.stringify({ model: 'tiny-moe', prompt: [1, 2, 3], max_tokens: 40, temperature: 0, stream: true, ignore_eos: true }), signal: ac.signal });
    const reader = r.body!.getReader();
    await reader.read(); // the first chunk arrived: the sequence is running
    ac.abort();
    await expect(reader.read()).rejects.toThrow();
    for (let i = 0; i < 100 && engine.runningCount + engine.waitingCount > 0; i++) await new Promise((res) => setTimeout(res, 10));
    expect(engine.runningCount + engine.waitingCount).toBe(0);
    expect(engine.counters.decodeTokens - before).toBeLessThan(39);
    const metrics = await (await fetch(url + '/metrics')).text();
    expect(metrics).toMatch(/farskip_request_success_total\{finished_reason="cancelled"\} [1-9]/);
    expect((await post('/v1/completions', { model: 'tiny-moe', prompt: [1], max_tokens: 2 })).status).toBe(200);
  });
});

describe('bad requests: a 4xx JSON error in the OpenAI format, and the server stays up', () => {
  const cases: [string, string, unknown, number, RegExp][] = [
    ['malformed JSON', '/v1/completions', '{"model": "tiny-moe", "prompt": ', 400, /not valid JSON/],
    ['not an object', '/v1/completions', '[1, 2]', 400, /JSON object/],
    ['wrong type', '/v1/completions', { model: 'tiny-moe', prompt: 'x', max_tokens: 'ten' }, 400, /'max_tokens'/],
    ['missing prompt', '/v1/completions', { model: 'tiny-moe' }, 400, /'prompt'/],
    ['negative token id', '/v1/completions', { model: 'tiny-moe', prompt: [1, -2] }, 400, /'prompt/],
    ['token outside the vocabulary', '/v1/completions', { model: 'tiny-moe', prompt: [1, 100000] }, 400, /outside the vocabulary/],
    ['unknown model', '/v1/completions', { model: 'gpt-4', prompt: 'x' }, 404, /does not exist/],
    ['prompt too long', '/v1/completions', { model: 'tiny-moe', prompt: Array.from({ length: 61 }, () => 5), max_tokens: 1 }, 400, /at most 60/],
    ['max_tokens over the limit', '/v1/completions', { model: 'tiny-moe', prompt: 'x', max_tokens: 41 }, 400, /limit of 40/],
    ['context too long', '/v1/completions', { model: 'tiny-moe', prompt: Array.from({ length: 60 }, () => 5), max_tokens: 40 }, 400, /maximum context length is 96/],
    ['temperature out of range', '/v1/completions', { model: 'tiny-moe', prompt: 'x', temperature: 3 }, 400, /'temperature'/],
    ['unsupported penalty', '/v1/completions', { model: 'tiny-moe', prompt: 'x', presence_penalty: 0.5 }, 400, /presence_penalty/],
    ['empty messages', '/v1/chat/completions', { model: 'tiny-moe', messages: [] }, 400, /'messages'/],
    ['bad role', '/v1/chat/completions', { model: 'tiny-moe', messages: [{ role: 'wizard', content: 'x' }] }, 400, /'messages.0.role'/],
    ['body too large', '/v1/completions', { model: 'tiny-moe', prompt: 'x'.repeat(5000) }, 413, /larger than this server's limit of 4096 bytes/],
    ['unknown route', '/v1/embeddings', { model: 'tiny-moe', input: 'x' }, 404, /no route/],
  ];
  for (const [name, path, body, status, message] of cases) {
    it(name, async () => {
      const r = await post(path, body);
      expect(r.status).toBe(status);
      expect(r.json.error).toMatchObject({ message: expect.stringMatching(message), type: expect.any(String) });
      expect(Object.keys(r.json.error).sort()).toEqual(['code', 'message', 'param', 'type']);
    });
  }

  it('wrong method: 405', async () => {
    const r = await fetch(url + '/v1/completions');
    expect(r.status).toBe(405);
    expect(((await r.json()) as any).error.message).toMatch(/accepts POST/);
  });

  it('more requests than the batch and queue hold: 429 with a rate_limit_error', async () => {
    // 3 slots + 2 queued; a burst of 8 long requests: some are refused, the rest complete
    const burst = await Promise.all(Array.from({ length: 8 }, (_, i) => post('/v1/completions', { model: 'tiny-moe', prompt: [i + 1], max_tokens: 30, temperature: 0, ignore_eos: true })));
    const refused = burst.filter((r) => r.status === 429);
    expect(refused.length).toBeGreaterThan(0);
    expect(refused[0]!.json.error.type).toBe('rate_limit_error');
    expect(burst.filter((r) => r.status === 200).length).toBe(8 - refused.length);
    expect(((await (await fetch(url + '/health')).json()) as any).status).toBe('ok');
  });
});

describe('operational endpoints', () => {
  it('/v1/models, /health, /version, /metrics', async () => {
    const models = (await (await fetch(url + '/v1/models')).json()) as any;
    expect(models.data[0]).toMatchObject({ id: 'tiny-moe', object: 'model', max_model_len: 96 });
    expect((await fetch(url + '/health')).status).toBe(200);
    expect(((await (await fetch(url + '/version')).json()) as any).version).toMatch(/^\d+\.\d+\.\d+$/);
    const m = await fetch(url + '/metrics');
    expect(m.headers.get('content-type')).toMatch(/text\/plain/);
    const text = await m.text();
    for (const name of ['farskip_requests_total', 'farskip_prompt_tokens_total', 'farskip_generation_tokens_total', 'farskip_time_to_first_token_seconds_bucket',
      'farskip_inter_token_latency_seconds_bucket', 'farskip_e2e_request_latency_seconds_count', 'farskip_num_requests_running', 'farskip_requests_rejected_total']) {
      expect(text).toContain(name);
    }
    expect(text).toMatch(/farskip_requests_total\{endpoint="\/v1\/completions",status="200"\} \d+/);
  });

  it('the remote-tokenizer endpoints lm-evaluation-harness probes: /tokenizer_info, /tokenize, /detokenize', async () => {
    const info = (await (await fetch(url + '/tokenizer_info')).json()) as any;
    expect(info.eos_token).toBe('<|im_end|>');
    expect(info.chat_template).toContain('<|im_start|>');
    const t = await post('/tokenize', { prompt: 'Hello, world!', add_special_tokens: false });
    expect(t.json.tokens).toEqual(tok().encode('Hello, world!', { addSpecialTokens: false }));
    expect((await post('/detokenize', { tokens: t.json.tokens })).json.prompt).toBe('Hello, world!');
    expect((await post('/detokenize', { tokens: ['a'] })).status).toBe(400);
  });

  it('binds to 127.0.0.1 unless told otherwise; an API key is enforced on /v1', async () => {
    expect(new URL(url).hostname).toBe('127.0.0.1');
    const guarded = new InferenceServer(loaded, engine, { port: 0, apiKey: 'sekret' });
    const g = await guarded.listen();
    try {
      const no = await fetch(g.url + '/v1/models');
      expect(no.status).toBe(401);
      expect(((await no.json()) as any).error.type).toBe('authentication_error');
      expect((await fetch(g.url + '/v1/models', { headers: { Authorization: 'Bearer sekret' } })).status).toBe(200);
      expect((await fetch(g.url + '/health')).status).toBe(200);
    } finally {
      await guarded.close();
    }
  });
});
