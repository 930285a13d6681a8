// The OpenAI-compatible HTTP server (node:http): routing, body limits, authentication, errors, metrics.
//   POST /v1/completions, /v1/chat/completions   (completions.ts)
//   GET  /v1/models, /health, /metrics (Prometheus), /version
//   GET  /tokenizer_info, POST /tokenize, /detokenize   (vLLM's, which lm-evaluation-harness's remote tokenizer uses)
// Every failure is a JSON error in OpenAI's format with a 4xx status (5xx only for the server's own faults), and
// nothing a client sends reaches the process unguarded: handlers run inside one try/catch per request.
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { handleCompletion, sendJson } from './completions.js';
import type { Engine } from './engine.js';
import type { LoadedModel } from './load.js';
import { ServerMetrics } from './metrics.js';
import { ApiError } from './openai.js';

export interface ServeOptions {
  /** default 127.0.0.1 (loopback only); 0.0.0.0 to accept other machines */
  host?: string;
  /** default 8000; 0 picks a free port */
  port?: number;
  /** request bodies above this are refused with 413 (default 1 MiB) */
  maxBodyBytes?: number;
  /** default: the engine's model length - 1 */
  maxPromptTokens?: number;
  /** upper bound on max_tokens (default: the engine's model length) */
  maxNewTokens?: number;
  /** when set, requests must send `Authorization: Bearer <apiKey>` */
  apiKey?: string;
}

export const VERSION = '0.1.0';

export class InferenceServer {
  readonly metrics: ServerMetrics;
  private readonly http: Server;
  private readonly limits: { maxBodyBytes: number; maxPromptTokens: number; maxNewTokens: number };

  constructor(readonly loaded: LoadedModel, readonly engine: Engine, readonly options: ServeOptions = {}) {
    if (!loaded.tokenizer) throw new Error(`${loaded.source.path}: no tokenizer.json found next to the model or in the run's tokenizer/ directory; pass --tokenizer <dir>`);
    this.metrics = new ServerMetrics(() => ({ running: engine.runningCount, waiting: engine.waitingCount }));
    this.limits = {
      maxBodyBytes: options.maxBodyBytes ?? 1 << 20,
      maxPromptTokens: options.maxPromptTokens ?? engine.maxModelLen - 1,
      maxNewTokens: options.maxNewTokens ?? engine.maxModelLen,
    };
    this.http = createServer((req, res) => { void this.handle(req, res); });
    // a client that stops sending cannot hold a connection forever
    this.http.requestTimeout = 60_000;
    this.http.headersTimeout = 20_000;
  }

  /** Starts listening; resolves with the bound address. */
  listen(): Promise<{ url: string; port: number; host: string }> {
    const host = this.options.host ?? '127.0.0.1';
    return new Promise((resolve, reject) => {
      this.http.once('error', reject);
      this.http.listen(this.options.port ?? 8000, host, () => {
        const a = this.http.address() as AddressInfo;
        resolve({ url: `http://${host.includes(':') ? `[${host}]` : host}:${a.port}`, port: a.port, host });
      });
    });
  }

  /** Stops accepting connections and closes idle ones; the engine is the caller's to stop. */
  close(): Promise<void> {
    return new Promise((resolve) => {
      this.http.close(() => resolve());
      this.http.closeAllConnections();
    });
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const arrival = performance.now();
    const path = (req.url ?? '/').split('?')[0]!;
    const endpoint = ROUTES[path] ? path : 'other';
    let status = 500;
    try {
      status = await this.route(req, res, path, arrival);
    } catch (e) {
      const err = e instanceof ApiError ? e : new ApiError(500, `internal error: ${(e as Error)?.message ?? String(e)}`);
      if (err.status >= 500) console.error(`farskip-infer: ${req.method} ${path}: ${(e as Error)?.stack ?? e}`);
      status = err.status;
      if (!res.headersSent) sendJson(res, err.status, err.toJSON(), err.status === 413 ? { Connection: 'close' } : {});
      else if (!res.destroyed) res.end();
    } finally {
      this.metrics.requests.inc({ endpoint, status: String(status) });
    }
  }

  private async route(req: IncomingMessage, res: ServerResponse, path: string, arrival: number): Promise<number> {
    const methods = ROUTES[path];
    if (!methods) throw new ApiError(404, `no route ${req.method} ${path}; the API is under /v1 (completions, chat/completions, models)`, null, 'invalid_request_error', 'not_found');
    if (!methods.includes(req.method ?? '')) throw new ApiError(405, `${path} accepts ${methods.join(', ')}, not ${req.method}`);
    if (this.options.apiKey && path.startsWith('/v1/') && req.headers.authorization !== `Bearer ${this.options.apiKey}`) {
      throw new ApiError(401, 'missing or wrong API key: send Authorization: Bearer <key>');
    }
    const tok = this.loaded.tokenizer!;
    const engine = this.engine;
    switch (path) {
      case '/health':
        if (engine.failure) { sendJson(res, 503, new ApiError(503, `the engine failed: ${engine.failure.message}`).toJSON()); return 503; }
        sendJson(res, 200, { status: 'ok' });
        return 200;
      case '/metrics': {
        const text = await this.metrics.text();
        res.writeHead(200, { 'Content-Type': this.metrics.contentType });
        res.end(text);
        return 200;
      }
      case '/version':
        sendJson(res, 200, { version: VERSION });
        return 200;
      case '/v1/models':
        sendJson(res, 200, { object: 'list', data: [{ id: this.loaded.id, object: 'model', created: STARTED, owned_by: 'farskip', root: this.loaded.source.path, max_model_len: engine.maxModelLen, farskip: engine.model.farskip }] });
        return 200;
      case '/tokenizer_info':
        sendJson(res, 200, { eos_token: tok.eosToken, bos_token: tok.bosToken, pad_token: tok.padToken, chat_template: typeof tok.config.chat_template === 'string' ? tok.config.chat_template : null, model_max_length: engine.maxModelLen });
        return 200;
      default:
        break;
    }
    const body = await readJson(req, this.limits.maxBodyBytes);
    if (path === '/tokenize') {
      const b = body as { prompt?: unknown; add_special_tokens?: unknown };
      if (typeof b.prompt !== 'string') throw new ApiError(400, "'prompt' must be a string", 'prompt');
      const tokens = tok.encode(b.prompt, { addSpecialTokens: b.add_special_tokens !== false });
      sendJson(res, 200, { tokens, count: tokens.length, max_model_len: engine.maxModelLen });
      return 200;
    }
    if (path === '/detokenize') {
      const t = (body as { tokens?: unknown }).tokens;
      if (!Array.isArray(t) || !t.every((x) => Number.isInteger(x) && x >= 0)) throw new ApiError(400, "'tokens' must be an array of non-negative integers", 'tokens');
      sendJson(res, 200, { prompt: tok.decode(t as number[]) });
      return 200;
    }
    const cx = { engine, tokenizer: tok, modelId: this.loaded.id, stopTokens: this.loaded.stopTokens, metrics: this.metrics, limits: this.limits, arrival };
    if (engine.failure) throw new ApiError(503, `the engine failed and cannot serve: ${engine.failure.message}`);
    return handleCompletion(path === '/v1/chat/completions' ? 'chat' : 'completion', body, res, cx);
  }
}

const STARTED = Math.floor(Date.now() / 1000);

const ROUTES: Record<string, string[]> = {
  '/v1/completions': ['POST'], '/v1/chat/completions': ['POST'], '/v1/models': ['GET'], '/health': ['GET'], '/metrics': ['GET'],
  '/version': ['GET'], '/tokenizer_info': ['GET'], '/tokenize': ['POST'], '/detokenize': ['POST'],
};

/** The request body as JSON, at most `limit` bytes (413 beyond, 400 when it is not a JSON object). */
function readJson(req: IncomingMessage, limit: number): Promise<unknown> {
  const declared = Number(req.headers['content-length'] ?? NaN);
  if (declared > limit) return Promise.reject(new ApiError(413, `the request body (${declared} bytes) is larger than this server's limit of ${limit} bytes`));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let failed = false;
    req.on('data', (c: Buffer) => {
      if (failed) return;
      size += c.length;
      if (size > limit) { failed = true; reject(new ApiError(413, `the request body is larger than this server's limit of ${limit} bytes`)); return; }
      chunks.push(c);
    });
    req.on('error', (e) => { if (!failed) { failed = true; reject(new ApiError(400, `reading the request failed: ${e.message}`)); } });
    req.on('end', () => {
      if (failed) return;
      const text = Buffer.concat(chunks).toString('utf8');
      let v: unknown;
      try {
        v = JSON.parse(text);
      } catch (e) {
        reject(new ApiError(400, `the body is not valid JSON (${(e as Error).message}); send a JSON object with Content-Type: application/json`));
        return;
      }
      if (v === null || typeof v !== 'object' || Array.isArray(v)) { reject(new ApiError(400, 'the body must be a JSON object')); return; }
      resolve(v);
    });
  });
}
