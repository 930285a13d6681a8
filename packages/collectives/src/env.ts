// Environment access without importing node:process, so the threads backend still loads where `process` is
// absent (browsers); every module of this package reads and defaults variables through these two.
type Env = Record<string, string | undefined>;
const processEnv = (): Env | undefined => (globalThis as { process?: { env?: Env } }).process?.env;

export function envVar(name: string): string | undefined {
  return processEnv()?.[name];
}

/** Sets `name` to `value` unless the user set it (visible to native libraries loaded afterwards). */
export function envDefault(name: string, value: string): void {
  const env = processEnv();
  if (env && env[name] === undefined) env[name] = value;
}

/** A non-negative number from the environment, `dflt` when unset; a malformed value is an error naming it. */
export function envNumber(name: string, dflt: number): number {
  const raw = envVar(name);
  if (raw === undefined || raw === '') return dflt;
  const v = Number(raw);
  if (!Number.isFinite(v) || v < 0) throw new Error(`${name}=${raw}: expected a non-negative number (unset it for the default ${dflt})`);
  return v;
}
