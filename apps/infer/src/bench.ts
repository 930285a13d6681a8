// `farskip-infer bench`: runs bench/ttft.mjs of this package (shipped next to dist/).
import { fileURLToPath } from 'node:url';

export async function runBench(o: { quick: boolean }): Promise<void> {
  if (o.quick) process.env.FARSKIP_BENCH_QUICK = '1';
  const script = fileURLToPath(new URL('../bench/ttft.mjs', import.meta.url));
  await import(script);
}
