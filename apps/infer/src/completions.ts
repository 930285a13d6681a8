// /v1/completions and /v1/chat/completions: a validated request becomes one engine sequence per prompt and
// choice; their tokens come back as one JSON response or as server-sent events (`data: {chunk}` ... `data: [DONE]`).
import { randomUUID } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import { ChatTemplateError } from '@farskip/models';
import type { ChatMessage, Tokenizer } from '@farskip/models';
import { QueueFullError } from './engine.js';
import type { Engine, FinishReason, Sequence, SequenceParams } from './engine.js';
import type { TokenLogprobs } from './logprobs.js';
import type { ServerMetrics } from './metrics.js';
import { ApiError, ChatRequest, CompletionRequest, parseRequest, refuseUnsupported, stopList } from './openai.js';
import { CompletionText } from './text.js';

export interface CompletionContext {
  engine: Engine;
  tokenizer: Tokenizer;
  modelId: string;
  stopTokens: number[];
  metrics: ServerMetrics;
  limits: { maxPromptTokens: number; maxNewTokens: number };
  /** request arrival (performance.now) */
  arrival: number;
}

/** One choice: a sequence and what the client gets of it. */
interface Choice {
  index: number;
  prompt: number[];
  seq: Sequence | null;
  text: CompletionText;
  /** generated tokens with their logprobs (the stop token excluded unless include_stop_str_in_output) */
  tokens: { id: number; lp: TokenLogprobs | null }[];
  promptLogprobs: (TokenLogprobs | null)[] | null;
  finish: FinishReason | null;
  error?: Error;
  lastTokenAt: number;
  /** streaming: text_offset of the next logprobs entry */
  streamOffset: number;
}

type Kind = 'completion' | 'chat';

interface Prepared {
  prompts: number[][];
  n: number;
  params: Omit<SequenceParams, 'prompt' | 'seed'> & { seed?: number };
  stops: string[];
  includeStop: boolean;
  stream: boolean;
  includeUsage: boolean;
  echo: boolean;
  /** completion logprobs: top n; chat: top_logprobs when logprobs is true */
  logprobs: number | null;
}

export async function handleCompletion(kind: Kind, body: unknown, res: ServerResponse, cx: CompletionContext): Promise<number> {
  const p = kind === 'completion' ? prepareCompletion(parseRequest(CompletionRequest, body), cx) : prepareChat(parseRequest(ChatRequest, body), cx);
  const choices: Choice[] = [];
  p.prompts.forEach((prompt, pi) => {
    for (let j = 0; j < p.n; j++) {
      choices.push({ index: pi * p.n + j, prompt, seq: null, text: new CompletionText(cx.tokenizer, p.stops), tokens: [], promptLogprobs: null, finish: null, lastTokenAt: 0, streamOffset: 0 });
    }
  });
  const id = `${kind === 'chat' ? 'chatcmpl' : 'cmpl'}-${randomUUID().replace(/-/g, '')}`;
  const created = Math.floor(Date.now() / 1000);
  const stream = p.stream ? new EventStream(res) : null;
  let notify: (() => void) | null = null;
  const done = new Promise<void>((resolve) => { notify = resolve; });
  let open = choices.length;

  // a client that goes away cancels its sequences, which frees their slots
  res.on('close', () => { for (const c of choices) c.seq?.cancel('cancelled'); });

  const onToken = (c: Choice) => (token: number, info: { logprobs: TokenLogprobs | null; stop: boolean }): void => {
    const now = performance.now();
    if (c.lastTokenAt === 0) cx.metrics.ttft.observe((now - cx.arrival) / 1000);
    else cx.metrics.interToken.observe((now - c.lastTokenAt) / 1000);
    c.lastTokenAt = now;
    cx.metrics.generationTokens.inc();
    if (info.stop && !p.includeStop) return;
    c.tokens.push({ id: token, lp: info.logprobs });
    if (c.text.push(token)) c.seq!.cancel('stop');
    if (stream) {
      const delta = c.text.take();
      if (delta || p.logprobs !== null) stream.send(chunk(kind, id, created, cx.modelId, c, p, cx.tokenizer, delta, [c.tokens[c.tokens.length - 1]!], null));
    }
  };
  const sendEcho = (c: Choice): void => {
    const entries = c.prompt.map((tid, i) => ({ id: tid, lp: c.promptLogprobs?.[i] ?? null }));
    stream!.send(chunk(kind, id, created, cx.modelId, c, p, cx.tokenizer, cx.tokenizer.decode(c.prompt), entries, null));
  };
  const onFinish = (c: Choice) => (reason: FinishReason, error?: Error): void => {
    c.finish = reason;
    c.error = error;
    cx.metrics.finished.inc({ finished_reason: reason });
    if (stream && (reason === 'stop' || reason === 'length')) {
      stream.send(chunk(kind, id, created, cx.modelId, c, p, cx.tokenizer, c.text.take(true), [], reason));
    }
    if (--open === 0) notify!();
  };
  try {
    for (const c of choices) {
      cx.metrics.promptTokens.inc(c.prompt.length);
      c.seq = cx.engine.submit({ ...p.params, prompt: c.prompt, seed: p.params.seed === undefined ? undefined : p.params.seed + c.index }, {
        onPrompt: (lp) => { c.promptLogprobs = lp; if (stream && p.echo) sendEcho(c); },
        onToken: onToken(c),
        onFinish: onFinish(c),
      });
    }
  } catch (e) {
    for (const c of choices) c.seq?.cancel('cancelled');
    if (e instanceof QueueFullError) { cx.metrics.rejected.inc(); throw new ApiError(429, e.message, null, 'rate_limit_error', 'queue_full'); }
    throw new ApiError(400, (e as Error).message);
  }
  if (stream) {
    stream.start();
    if (kind === 'chat') for (const c of choices) stream.send(chatRoleChunk(id, created, cx.modelId, c.index));
    // echo without logprobs now; with logprobs once the prefill scored the prompt (onPrompt)
    if (p.echo && p.logprobs === null) for (const c of choices) sendEcho(c);
  }
  await done;
  cx.metrics.e2e.observe((performance.now() - cx.arrival) / 1000);
  const failed = choices.find((c) => c.finish === 'error');
  const failure = failed ? new ApiError(500, `generation failed: ${failed.error?.message ?? 'engine error'}`) : null;
  if (res.destroyed || choices.every((c) => c.finish === 'cancelled')) return 499; // client closed the request
  const usage = { prompt_tokens: choices.filter((_, i) => i % p.n === 0).reduce((s, c) => s + c.prompt.length, 0), completion_tokens: choices.reduce((s, c) => s + c.tokens.length, 0), total_tokens: 0 };
  usage.total_tokens = usage.prompt_tokens + usage.completion_tokens;
  if (stream) {
    if (failure) stream.send(failure.toJSON());
    if (p.includeUsage) stream.send({ id, object: kind === 'chat' ? 'chat.completion.chunk' : 'text_completion', created, model: cx.modelId, choices: [], usage });
    stream.end();
    return 200;
  }
  if (failure) throw failure;
  const body2 = kind === 'chat'
    ? { id, object: 'chat.completion', created, model: cx.modelId, choices: choices.map((c) => chatChoice(c, p, cx.tokenizer)), usage }
    : { id, object: 'text_completion', created, model: cx.modelId, choices: choices.map((c) => completionChoice(c, p, cx.tokenizer)), usage };
  // Server-Timing (W3C): the engine's share (submit to the last sequence's end) and the whole request's, so a client
  // sees what the server adds (parsing, validation, tokenization, response) without a clock of its own
  const engineMs = Math.max(...choices.map((c) => c.seq!.times.finished - c.seq!.times.submitted));
  const totalMs = performance.now() - cx.arrival;
  sendJson(res, 200, body2, { 'Server-Timing': `engine;dur=${engineMs.toFixed(3)}, total;dur=${totalMs.toFixed(3)}` });
  return 200;
}

function limitsFor(prompts: number[][], maxTokens: number, cx: CompletionContext, n: number): void {
  const V = cx.engine.model.spec.vocabSize;
  if (maxTokens > cx.limits.maxNewTokens) throw new ApiError(400, `'max_tokens' ${maxTokens} is above this server's limit of ${cx.limits.maxNewTokens} new tokens`, 'max_tokens');
  if (prompts.length * n > cx.engine.maxBatch + cx.engine.maxQueue) throw new ApiError(400, `${prompts.length * n} sequences (prompts × n) are more than this server runs and queues at once (${cx.engine.maxBatch + cx.engine.maxQueue}); split the request`, 'prompt');
  for (const pr of prompts) {
    if (pr.length === 0) throw new ApiError(400, 'the prompt is empty after tokenization; send at least one token', 'prompt');
    for (const t of pr) if (t >= V) throw new ApiError(400, `prompt token id ${t} is outside the vocabulary [0, ${V})`, 'prompt');
    if (pr.length > cx.limits.maxPromptTokens) throw new ApiError(400, `the prompt has ${pr.length} tokens; this server accepts at most ${cx.limits.maxPromptTokens}`, 'prompt');
    if (pr.length + maxTokens > cx.engine.maxModelLen) {
      throw new ApiError(400, `this model's maximum context length is ${cx.engine.maxModelLen} tokens; the request asks for ${pr.length + maxTokens} (${pr.length} in the prompt, ${maxTokens} in the completion); shorten the prompt or lower 'max_tokens'`, 'max_tokens');
    }
  }
}

function sampling(r: CompletionRequest | ChatRequest, cx: CompletionContext) {
  const topK = r.top_k ?? 0;
  return {
    temperature: r.temperature ?? 1, topP: r.top_p ?? 1, topK: topK < 0 ? 0 : topK,
    seed: r.seed ?? undefined, stopTokens: r.ignore_eos ? [] : cx.stopTokens,
  };
}

function prepareCompletion(r: CompletionRequest, cx: CompletionContext): Prepared {
  checkModel(r.model, cx);
  refuseUnsupported(r);
  const pr = r.prompt;
  const prompts = typeof pr === 'string' ? [cx.tokenizer.encode(pr)]
    : typeof pr[0] === 'string' ? (pr as string[]).map((s) => cx.tokenizer.encode(s))
      : typeof pr[0] === 'number' ? [pr as number[]] : (pr as number[][]);
  const maxTokens = r.max_tokens ?? 16;
  const n = r.n ?? 1;
  limitsFor(prompts, maxTokens, cx, n);
  const logprobs = r.logprobs ?? null;
  return {
    prompts, n, stops: stopList(r.stop), includeStop: !!r.include_stop_str_in_output, stream: !!r.stream, includeUsage: !!r.stream_options?.include_usage,
    echo: !!r.echo, logprobs,
    params: { ...sampling(r, cx), maxNewTokens: maxTokens, logprobs, promptLogprobs: !!r.echo && logprobs !== null },
  };
}

function prepareChat(r: ChatRequest, cx: CompletionContext): Prepared {
  checkModel(r.model, cx);
  refuseUnsupported(r);
  const messages: ChatMessage[] = r.messages.map((m) => ({ ...m, content: typeof m.content === 'string' ? m.content : (m.content ?? []).map((c) => c.text).join('') }));
  let text: string;
  try {
    text = cx.tokenizer.applyChatTemplate(messages, { addGenerationPrompt: r.add_generation_prompt ?? true, extra: r.chat_template_kwargs ?? undefined });
  } catch (e) {
    if (e instanceof ChatTemplateError) throw new ApiError(400, `cannot format the messages: ${e.message}`, 'messages');
    throw e;
  }
  // the template writes the special tokens (bos) itself
  const prompt = cx.tokenizer.encode(text, { addSpecialTokens: false });
  const maxTokens = r.max_completion_tokens ?? r.max_tokens ?? Math.min(cx.limits.maxNewTokens, cx.engine.maxModelLen - prompt.length);
  const n = r.n ?? 1;
  limitsFor([prompt], maxTokens, cx, n);
  const logprobs = r.logprobs ? r.top_logprobs ?? 0 : null;
  return {
    prompts: [prompt], n, stops: stopList(r.stop), includeStop: !!r.include_stop_str_in_output, stream: !!r.stream, includeUsage: !!r.stream_options?.include_usage,
    echo: false, logprobs, params: { ...sampling(r, cx), maxNewTokens: maxTokens, logprobs },
  };
}

function checkModel(model: string, cx: CompletionContext): void {
  if (model !== cx.modelId) throw new ApiError(404, `the model '${model}' does not exist; this server serves '${cx.modelId}' (GET /v1/models)`, 'model', 'invalid_request_error', 'model_not_found');
}

// ---------------------------------------------------------------------------------------------- response shapes

function tokenText(tok: Tokenizer, id: number): string {
  return tok.decode([id]);
}

/** Legacy completions logprobs: parallel arrays over (echoed prompt and) generated tokens. */
function completionLogprobs(entries: { id: number; lp: TokenLogprobs | null }[], tok: Tokenizer, offset0: number) {
  const out = { tokens: [] as string[], token_logprobs: [] as (number | null)[], top_logprobs: [] as (Record<string, number> | null)[], text_offset: [] as number[] };
  let offset = offset0;
  for (const e of entries) {
    const s = tokenText(tok, e.id);
    out.tokens.push(s);
    out.text_offset.push(offset);
    offset += s.length;
    out.token_logprobs.push(e.lp ? e.lp.logprob : null);
    if (!e.lp) { out.top_logprobs.push(null); continue; }
    // the chosen token is listed too (vLLM does): lm-evaluation-harness's is_greedy compares it with the best
    const top: Record<string, number> = {};
    for (const t of e.lp.top) top[tokenText(tok, t.token)] = t.logprob;
    top[s] ??= e.lp.logprob;
    out.top_logprobs.push(top);
  }
  return out;
}

function completionChoice(c: Choice, p: Prepared, tok: Tokenizer) {
  const promptText = p.echo ? tok.decode(c.prompt) : '';
  let logprobs = null;
  if (p.logprobs !== null) {
    const entries = [
      ...(p.echo ? c.prompt.map((id, i) => ({ id, lp: c.promptLogprobs?.[i] ?? null })) : []),
      ...c.tokens,
    ];
    logprobs = completionLogprobs(entries, tok, 0);
  }
  return { index: c.index, text: promptText + c.text.text, logprobs, finish_reason: c.finish };
}

function chatLogprobs(entries: { id: number; lp: TokenLogprobs | null }[], tok: Tokenizer) {
  const bytes = (s: string): number[] => [...Buffer.from(s, 'utf8')];
  return {
    content: entries.map((e) => {
      const s = tokenText(tok, e.id);
      return { token: s, logprob: e.lp?.logprob ?? 0, bytes: bytes(s), top_logprobs: (e.lp?.top ?? []).map((t) => { const ts = tokenText(tok, t.token); return { token: ts, logprob: t.logprob, bytes: bytes(ts) }; }) };
    }),
  };
}

function chatChoice(c: Choice, p: Prepared, tok: Tokenizer) {
  return { index: c.index, message: { role: 'assistant', content: c.text.text }, logprobs: p.logprobs !== null ? chatLogprobs(c.tokens, tok) : null, finish_reason: c.finish };
}

function chunk(kind: Kind, id: string, created: number, model: string, c: Choice, p: Prepared, tok: Tokenizer, text: string,
  tokens: { id: number; lp: TokenLogprobs | null }[], finish: FinishReason | null) {
  if (kind === 'chat') {
    const delta = finish && !text ? {} : { content: text };
    return { id, object: 'chat.completion.chunk', created, model, choices: [{ index: c.index, delta, logprobs: p.logprobs !== null && tokens.length ? chatLogprobs(tokens, tok) : null, finish_reason: finish }] };
  }
  let logprobs = null;
  if (p.logprobs !== null && tokens.length) {
    logprobs = completionLogprobs(tokens, tok, c.streamOffset);
    c.streamOffset += logprobs.tokens.reduce((n, t) => n + t.length, 0);
  }
  return { id, object: 'text_completion', created, model, choices: [{ index: c.index, text, logprobs, finish_reason: finish }] };
}

function chatRoleChunk(id: string, created: number, model: string, index: number) {
  return { id, object: 'chat.completion.chunk', created, model, choices: [{ index, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }] };
}

/** Server-sent events: headers once, then `data: <json>\n\n` per event, `data: [DONE]` at the end. */
class EventStream {
  private started = false;
  private readonly pending: unknown[] = [];
  constructor(private readonly res: ServerResponse) {}

  start(): void {
    this.started = true;
    this.res.writeHead(200, { 'Content-Type': 'text/event-stream; charset=utf-8', 'Cache-Control': 'no-cache', Connection: 'keep-alive', 'X-Accel-Buffering': 'no' });
    for (const e of this.pending.splice(0)) this.write(e);
  }

  send(event: unknown): void {
    if (!this.started) { this.pending.push(event); return; }
    this.write(event);
  }

  private write(event: unknown): void {
    if (!this.res.destroyed) this.res.write(`data: ${JSON.stringify(event)}\n\n`);
  }

  end(): void {
    if (!this.res.destroyed) this.res.end('data: [DONE]\n\n');
  }
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent || res.destroyed) return;
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text), ...headers });
  res.end(text);
}
