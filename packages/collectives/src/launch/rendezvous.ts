// A tiny key-value store on 127.0.0.1 that the launcher runs for the ranks it starts (env FARSKIP_RDZV=host:port):
// the nccl/rccl backends publish and fetch their 128-byte unique id through it, and the launcher records dead
// ranks under 'farskip/failed/<rank>' so a backend can notice a peer's death without waiting for its timeout.
// Protocol: one JSON object per line each way, {id, op: 'set'|'get'|'wait', key, value?, timeoutMs?} ->
// {id, ok, value?, error?}. Values are strings (base64 for bytes).
import { envVar } from '../env.js';
import { createConnection, createServer } from 'node:net';
import type { Server, Socket } from 'node:net';

export class RendezvousStore {
  readonly #data = new Map<string, string>();
  readonly #waiters = new Map<string, ((v: string) => void)[]>();
  readonly #sockets = new Set<Socket>();
  private constructor(private readonly server: Server, readonly host: string, readonly port: number) {}

  /** Starts the store on 127.0.0.1 (an ephemeral port unless given). */
  static async start(port = 0): Promise<RendezvousStore> {
    let store: RendezvousStore | undefined;
    const server = createServer((sock) => store!.#serve(sock));
    await new Promise<void>((res, rej) => { server.once('error', rej); server.listen(port, '127.0.0.1', () => res()); });
    server.unref();
    const addr = server.address() as { port: number };
    store = new RendezvousStore(server, '127.0.0.1', addr.port);
    return store;
  }

  /** 'host:port', the value of FARSKIP_RDZV */
  get address(): string { return `${this.host}:${this.port}`; }

  set(key: string, value: string): void {
    this.#data.set(key, value);
    for (const w of this.#waiters.get(key) ?? []) w(value);
    this.#waiters.delete(key);
  }
  get(key: string): string | undefined { return this.#data.get(key); }
  wait(key: string, timeoutMs = 300_000): Promise<string> {
    const v = this.#data.get(key);
    if (v !== undefined) return Promise.resolve(v);
    return new Promise((res, rej) => {
      const t = setTimeout(() => rej(new Error(`rendezvous: timed out after ${timeoutMs} ms waiting for key '${key}'`)), timeoutMs);
      t.unref?.();
      const l = this.#waiters.get(key) ?? [];
      l.push((x) => { clearTimeout(t); res(x); });
      this.#waiters.set(key, l);
    });
  }

  #serve(sock: Socket): void {
    this.#sockets.add(sock);
    sock.unref();
    sock.on('close', () => this.#sockets.delete(sock));
    sock.on('error', () => {});
    let buf = '';
    sock.on('data', (d) => {
      buf += d.toString('utf8');
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line.trim()) void this.#handle(sock, line);
      }
    });
  }

  async #handle(sock: Socket, line: string): Promise<void> {
    let req: { id: number; op: string; key: string; value?: string; timeoutMs?: number };
    try { req = JSON.parse(line); } catch { return; }
    const reply = (r: object): void => { if (!sock.destroyed) sock.write(JSON.stringify({ id: req.id, ...r }) + '\n'); };
    try {
      if (req.op === 'set') { this.set(req.key, String(req.value)); reply({ ok: true }); }
      else if (req.op === 'get') { const v = this.get(req.key); reply({ ok: true, ...(v !== undefined ? { value: v } : {}) }); }
      else if (req.op === 'wait') reply({ ok: true, value: await this.wait(req.key, req.timeoutMs) });
      else reply({ ok: false, error: `unknown op '${req.op}'` });
    } catch (e) { reply({ ok: false, error: (e as Error).message }); }
  }

  async close(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    await new Promise<void>((res) => this.server.close(() => res()));
  }
}

/** A rank's connection to the launcher's store; `RendezvousClient.fromEnv()` reads FARSKIP_RDZV. */
export class RendezvousClient {
  #next = 0;
  readonly #pending = new Map<number, { res: (v: string | undefined) => void; rej: (e: Error) => void }>();
  private constructor(private readonly sock: Socket) {
    let buf = '';
    sock.on('data', (d) => {
      buf += d.toString('utf8');
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const r = JSON.parse(buf.slice(0, nl)) as { id: number; ok: boolean; value?: string; error?: string };
        buf = buf.slice(nl + 1);
        const p = this.#pending.get(r.id);
        this.#pending.delete(r.id);
        if (this.#pending.size === 0) sock.unref();
        if (r.ok) p?.res(r.value); else p?.rej(new Error(`rendezvous: ${r.error}`));
      }
    });
    sock.on('error', (e) => { for (const p of this.#pending.values()) p.rej(e); this.#pending.clear(); });
    sock.unref();
  }

  static async connect(address: string): Promise<RendezvousClient> {
    const i = address.lastIndexOf(':');
    const sock = createConnection({ host: address.slice(0, i), port: Number(address.slice(i + 1)) });
    await new Promise<void>((res, rej) => { sock.once('connect', res); sock.once('error', rej); });
    return new RendezvousClient(sock);
  }
  static fromEnv(): Promise<RendezvousClient> {
    const a = envVar('FARSKIP_RDZV');
    if (!a) return Promise.reject(new Error('FARSKIP_RDZV is not set: start ranks with farskip-launch (or launch()) to get a rendezvous store'));
    return RendezvousClient.connect(a);
  }

  #call(op: string, key: string, extra: object = {}): Promise<string | undefined> {
    const id = this.#next++;
    this.sock.ref();
    return new Promise((res, rej) => {
      this.#pending.set(id, { res, rej });
      this.sock.write(JSON.stringify({ id, op, key, ...extra }) + '\n');
    });
  }
  async set(key: string, value: string): Promise<void> { await this.#call('set', key, { value }); }
  get(key: string): Promise<string | undefined> { return this.#call('get', key); }
  async wait(key: string, timeoutMs = 300_000): Promise<string> { return (await this.#call('wait', key, { timeoutMs }))!; }
  close(): void { this.sock.destroy(); }
}
