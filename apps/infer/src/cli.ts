#!/usr/bin/env node
// farskip-infer <generate|serve|bench> --model <dir> [options]; `--tp N` runs N ranks (threads backend) in lockstep.
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { Communicator } from '@farskip/collectives';
import type { FarSkipOptions, ParallelContext } from '@farskip/layers';
import { Engine } from './engine.js';
import { loadForInference } from './load.js';
import type { LoadedModel } from './load.js';

const USAGE = `usage: farskip-infer <command> --model <dir> [options]
commands:
  generate   complete --prompt "text" (repeatable; --chat formats it as a user message) and print the completions
  serve      OpenAI-compatible HTTP server: /v1/completions, /v1/chat/completions (SSE streaming, logprobs, echo),
             /v1/models, /health, /metrics; continuous batching of up to --max-batch sequences
  bench      TTFT (prompt 512/1024/2048), decode tokens/s and overlap, original vs FarSkip at TP/EP = 2 (bench/ttft.mjs)
model:
  --model <dir>            Hugging Face directory, trainer run directory, or trainer checkpoints/step-N
  --tokenizer <dir>        tokenizer.json directory (default: next to the model, or the run's tokenizer/)
  --farskip auto|original|full   connectivity: the checkpoint's own (auto, default), the original, or FarSkip
  --schedule overlapped|reference  (default overlapped)
  --tp <n>                 tensor parallel ranks (heads, shared and routed experts split; all-reduce form)
  --backend threads|mpi    how the --tp ranks run: worker threads of this process (default), or processes under
                           mpiexec (MPICH / Open MPI; several machines through its host file)
engine:
  --max-batch <n>          sequences decoded together (KV cache slots, default 8)
  --max-model-len <n>      tokens per sequence, prompt + completion (default 2048)
  --max-queue <n>          requests waiting beyond the batch before 429 (default 64)
serve:
  --host <addr>            default 127.0.0.1 (loopback only); 0.0.0.0 listens on every interface
  --port <n>               default 8000 (0: any free port)
  --served-model-name <s>  the 'model' clients send (default: the --model path)
  --api-key <key>          require Authorization: Bearer <key> on /v1
  --max-body-bytes <n>     default 1048576;  --max-prompt-tokens <n>;  --max-new-tokens <n>
generate:
  --prompt <text>  --chat  --max-tokens <n> (default 32)  --temperature <t> (default 0)  --top-p  --top-k  --seed  --json
bench:
  --quick                  a seconds-long smoke run (tiny model, numbers meaningless)`;

const OPTIONS = {
  model: { type: 'string' }, tokenizer: { type: 'string' }, farskip: { type: 'string', default: 'auto' }, schedule: { type: 'string', default: 'overlapped' },
  tp: { type: 'string', default: '1' }, backend: { type: 'string', default: 'threads' }, 'max-batch': { type: 'string', default: '8' }, 'max-model-len': { type: 'string', default: '2048' },
  'max-queue': { type: 'string', default: '64' }, host: { type: 'string', default: '127.0.0.1' }, port: { type: 'string', default: '8000' },
  'served-model-name': { type: 'string' }, 'api-key': { type: 'string' }, 'max-body-bytes': { type: 'string' }, 'max-prompt-tokens': { type: 'string' },
  'max-new-tokens': { type: 'string' }, prompt: { type: 'string', multiple: true }, chat: { type: 'boolean' }, 'max-tokens': { type: 'string', default: '32' },
  temperature: { type: 'string', default: '0' }, 'top-p': { type: 'string' }, 'top-k': { type: 'string' }, seed: { type: 'string' }, json: { type: 'boolean' },
  quick: { type: 'boolean' }, help: { type: 'boolean' },
} as const;

type Flags = ReturnType<typeof parse>['values'];
function parse(argv: string[]) {
  try {
    return parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
  } catch (e) {
    throw new Error(`${(e as Error).message}\n${USAGE}`);
  }
}

function int(flags: Flags, name: keyof Flags, min = 0): number | undefined {
  const v = flags[name];
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new Error(`--${name} ${String(v)}: expected an integer >= ${min}`);
  return n;
}

function num(flags: Flags, name: keyof Flags): number | undefined {
  const v = flags[name];
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new Error(`--${name} ${String(v)}: expected a number`);
  return n;
}

function connectivity(flags: Flags): FarSkipOptions | null | undefined {
  const f = flags.farskip;
  if (f === 'auto') return undefined;
  if (f === 'original') return null;
  if (f === 'full') return { mode: 'full' };
  throw new Error(`--farskip ${f}: expected auto (the checkpoint's connectivity), original or full`);
}

function engineOptions(flags: Flags) {
  const schedule = flags.schedule;
  if (schedule !== 'overlapped' && schedule !== 'reference') throw new Error(`--schedule ${schedule}: expected overlapped or reference`);
  return { maxBatch: int(flags, 'max-batch', 1), maxModelLen: int(flags, 'max-model-len', 2), maxQueue: int(flags, 'max-queue', 0), farskip: connectivity(flags), schedule: schedule as 'overlapped' | 'reference' };
}

async function main(argv: string[]): Promise<void> {
  const { positionals, values: flags } = parse(argv);
  const command = positionals[0];
  if (!command || flags.help) { console.log(USAGE); return; }
  if (!['generate', 'serve', 'bench'].includes(command)) throw new Error(`unknown command '${command}'\n${USAGE}`);
  if (command === 'bench') {
    const { runBench } = await import('./bench.js');
    await runBench({ quick: !!flags.quick });
    return;
  }
  if (!flags.model) throw new Error(`--model <dir> is required\n${USAGE}`);
  const tp = int(flags, 'tp', 1)!;
  const opts = engineOptions(flags); // validate before starting ranks
  if (tp > 1 && !process.env.FARSKIP_INFER_RANK) {
    const { launch } = await import('@farskip/collectives');
    const backend = flags.backend;
    if (backend !== 'threads' && backend !== 'mpi') throw new Error(`--backend ${backend}: expected threads or mpi`);
    const res = await launch({ world: tp, backend, script: fileURLToPath(import.meta.url), args: argv, env: { FARSKIP_INFER_RANK: '1' } });
    const bad = res.find((r) => r.exitCode !== 0);
    if (bad) throw new Error(`rank ${bad.rank} failed${bad.error ? `: ${bad.error.message}` : ` with exit code ${bad.exitCode}`}`);
    return;
  }
  let world: Communicator | undefined;
  let ctx: ParallelContext | undefined;
  if (process.env.FARSKIP_INFER_RANK) {
    const { initCommunicator } = await import('@farskip/collectives');
    const { ParallelContext } = await import('@farskip/layers');
    world = await initCommunicator();
    ctx = ParallelContext.create(world, { tp });
  }
  const loaded = loadForInference(flags.model, { tokenizer: flags.tokenizer, ctx, id: flags['served-model-name'] });
  if (world && world.rank !== 0) {
    await Engine.follow(loaded.model, world, opts);
    return;
  }
  const engine = new Engine(loaded.model, { ...opts, world });
  if (command === 'generate') await generateCommand(loaded, engine, flags);
  else await serveCommand(loaded, engine, flags);
}

async function generateCommand(loaded: LoadedModel, engine: Engine, flags: Flags): Promise<void> {
  const tok = loaded.tokenizer;
  if (!tok) throw new Error(`${loaded.source.path}: no tokenizer found; pass --tokenizer <dir>`);
  const prompts = flags.prompt ?? [];
  if (!prompts.length) throw new Error('generate: give at least one --prompt "text"');
  const run = engine.start();
  try {
    const results = await Promise.all(prompts.map(async (text) => {
      const ids = flags.chat ? tok.encode(tok.applyChatTemplate([{ role: 'user', content: text }], { addGenerationPrompt: true }), { addSpecialTokens: false }) : tok.encode(text);
      const seq = await engine.complete({
        prompt: ids, maxNewTokens: int(flags, 'max-tokens', 0)!, temperature: num(flags, 'temperature'), topP: num(flags, 'top-p'), topK: int(flags, 'top-k', 0),
        seed: int(flags, 'seed', 0), stopTokens: loaded.stopTokens,
      });
      if (seq.finished === 'error') throw engine.failure ?? new Error('generation failed');
      const stopped = seq.finished === 'stop';
      const out = stopped ? seq.generated.slice(0, -1) : seq.generated;
      const ttftMs = seq.times.firstToken - seq.times.submitted;
      const decodeS = (seq.times.finished - seq.times.firstToken) / 1000;
      return { prompt: text, promptTokens: ids.length, tokens: seq.generated, text: tok.decode(out, { skipSpecialTokens: true }), finishReason: seq.finished,
        ttftMs: +ttftMs.toFixed(2), decodeTokensPerSecond: seq.generated.length > 1 ? +((seq.generated.length - 1) / decodeS).toFixed(2) : null };
    }));
    if (flags.json) console.log(JSON.stringify(results, null, 2));
    else for (const r of results) console.log(`${r.prompt}${r.text}\n[${r.tokens.length} tokens, ${r.finishReason}, TTFT ${r.ttftMs} ms${r.decodeTokensPerSecond ? `, ${r.decodeTokensPerSecond} tok/s` : ''}]`);
  } finally {
    await engine.stop();
    await run;
  }
}

async function serveCommand(loaded: LoadedModel, engine: Engine, flags: Flags): Promise<void> {
  const { InferenceServer } = await import('./server.js');
  const server = new InferenceServer(loaded, engine, {
    host: flags.host, port: int(flags, 'port', 0), apiKey: flags['api-key'], maxBodyBytes: int(flags, 'max-body-bytes', 1),
    maxPromptTokens: int(flags, 'max-prompt-tokens', 1), maxNewTokens: int(flags, 'max-new-tokens', 0),
  });
  const run = engine.start();
  const { url } = await server.listen();
  const mib = (engine.kvCacheBytes / 2 ** 20).toFixed(1);
  const farskip = engine.options.farskip === undefined ? engine.model.farskip : engine.options.farskip;
  console.log(`farskip-infer: serving '${loaded.id}' (${loaded.source.kind}, ${farskip ? 'FarSkip' : 'original'} connectivity, ${engine.model.ctx.world.size} rank(s)) on ${url}`);
  console.log(`farskip-infer: max batch ${engine.maxBatch}, max model length ${engine.maxModelLen}, KV cache ${mib} MiB`);
  const shutdown = async (): Promise<void> => {
    await server.close();
    await engine.stop();
  };
  process.once('SIGINT', () => void shutdown());
  process.once('SIGTERM', () => void shutdown());
  await run;
  await server.close();
  if (engine.failure) throw engine.failure;
}

main(process.argv.slice(2)).catch((e: Error) => {
  console.error(`farskip-infer: ${e.message}`);
  process.exitCode = 1;
});
