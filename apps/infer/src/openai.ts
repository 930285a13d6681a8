// The OpenAI API's request shapes (what this server accepts, validated with zod) and its error format:
//   { "error": { "message", "type", "param", "code" } }  with a 4xx status for every bad request.
// Fields the server cannot honour (penalties, logit_bias, best_of > 1, suffix) are refused with a 400 naming the
// field rather than silently ignored; fields it does not know are ignored, as vLLM does (clients send extras).
import { z } from 'zod';

export class ApiError extends Error {
  constructor(readonly status: number, message: string, readonly param: string | null = null,
    readonly type = status === 429 ? 'rate_limit_error' : status >= 500 ? 'server_error' : status === 401 ? 'authentication_error' : 'invalid_request_error',
    readonly code: string | null = null) {
    super(message);
  }

  toJSON(): { error: { message: string; type: string; param: string | null; code: string | null } } {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

const tokenIds = z.array(z.number().int().nonnegative());
const stop = z.union([z.string(), z.array(z.string()).max(16)]).nullish();
const common = {
  model: z.string(),
  max_tokens: z.number().int().nonnegative().nullish(),
  temperature: z.number().min(0).max(2).nullish(),
  top_p: z.number().gt(0).max(1).nullish(),
  /** vLLM extension: keep the k most likely tokens (0 or -1: all) */
  top_k: z.number().int().min(-1).nullish(),
  n: z.number().int().min(1).max(16).nullish(),
  stream: z.boolean().nullish(),
  stream_options: z.object({ include_usage: z.boolean().nullish() }).nullish(),
  stop,
  seed: z.number().int().nullish(),
  presence_penalty: z.number().nullish(),
  frequency_penalty: z.number().nullish(),
  logit_bias: z.record(z.string(), z.number()).nullish(),
  user: z.string().nullish(),
  /** vLLM extension: the stop token ends the completion but its text is part of it */
  include_stop_str_in_output: z.boolean().nullish(),
  ignore_eos: z.boolean().nullish(),
};

export const CompletionRequest = z.object({
  ...common,
  prompt: z.union([z.string(), z.array(z.string()).min(1), tokenIds.min(1), z.array(tokenIds.min(1)).min(1)]),
  logprobs: z.number().int().min(0).max(20).nullish(),
  echo: z.boolean().nullish(),
  best_of: z.number().int().min(1).nullish(),
  suffix: z.string().nullish(),
});
export type CompletionRequest = z.infer<typeof CompletionRequest>;

const contentPart = z.object({ type: z.literal('text'), text: z.string() });
export const ChatRequest = z.object({
  ...common,
  messages: z.array(z.object({
    role: z.enum(['system', 'developer', 'user', 'assistant', 'tool']),
    content: z.union([z.string(), z.array(contentPart)]).nullable(),
    name: z.string().optional(),
  }).passthrough()).min(1),
  max_completion_tokens: z.number().int().nonnegative().nullish(),
  logprobs: z.boolean().nullish(),
  top_logprobs: z.number().int().min(0).max(20).nullish(),
  /** vLLM extensions */
  add_generation_prompt: z.boolean().nullish(),
  chat_template_kwargs: z.record(z.string(), z.unknown()).nullish(),
});
export type ChatRequest = z.infer<typeof ChatRequest>;

/** Parses `body` with `schema`, or throws a 400 naming the first bad field and what it must be. */
export function parseRequest<S extends z.ZodType>(schema: S, body: unknown): z.infer<S> {
  const r = schema.safeParse(body);
  if (r.success) return r.data;
  const issue = r.error.issues[0]!;
  const param = issue.path.join('.') || null;
  throw new ApiError(400, `${param ? `'${param}': ` : ''}${issue.message}`, param);
}

/** Refuses the sampling controls this server does not implement (rather than ignoring them). */
export function refuseUnsupported(r: { presence_penalty?: number | null; frequency_penalty?: number | null; logit_bias?: Record<string, number> | null; best_of?: number | null; suffix?: string | null; n?: number | null }): void {
  if (r.presence_penalty) throw new ApiError(400, "'presence_penalty' is not supported by this server; omit it or send 0", 'presence_penalty');
  if (r.frequency_penalty) throw new ApiError(400, "'frequency_penalty' is not supported by this server; omit it or send 0", 'frequency_penalty');
  if (r.logit_bias && Object.keys(r.logit_bias).length) throw new ApiError(400, "'logit_bias' is not supported by this server; omit it", 'logit_bias');
  if (r.best_of && r.best_of !== (r.n ?? 1)) throw new ApiError(400, "'best_of' other than n is not supported by this server", 'best_of');
  if (r.suffix) throw new ApiError(400, "'suffix' (insertion) is not supported by this server", 'suffix');
}

export function stopList(s: string | string[] | null | undefined): string[] {
  return (s === null || s === undefined ? [] : typeof s === 'string' ? [s] : s).filter((x) => x.length > 0);
}
