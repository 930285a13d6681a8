// The slice of vitest's API that the CUDA op tests use (describe / describe.skipIf, it / it.each, afterAll,
// expect(...).toEqual / toBe / comparisons), so tooling/device/check.mjs can run those same test files on a GPU
// machine that has Node but no node_modules (esbuild aliases `vitest` to this file when it bundles the check).
// Tests are collected at import and run by runCollected(); results are plain objects for the summary.
import { isDeepStrictEqual } from 'node:util';

const suites = [];
let current = null;

function suite(name, fn, skip) {
  const s = { name, skip: Boolean(skip), tests: [], afterAll: [] };
  suites.push(s);
  const prev = current;
  current = s;
  try { fn(); } finally { current = prev; }
}
export function describe(name, fn) { suite(name, fn, false); }
describe.skipIf = (cond) => (name, fn) => suite(name, fn, cond);
describe.skip = (name, fn) => suite(name, fn, true);

function addTest(name, fn) {
  if (!current) suite('(top level)', () => {}, false);
  (current ?? suites[suites.length - 1]).tests.push({ name, fn });
}
export function it(name, fn) { addTest(name, fn); }
it.each = (table) => (name, fn) => {
  for (const row of table) {
    const args = Array.isArray(row) ? row : [row];
    let i = 0;
    addTest(name.replace(/%[sdifjo]/g, () => String(args[i++])), () => fn(...args));
  }
};
it.skip = () => {};
export const test = it;
export function afterAll(fn) { (current ?? { afterAll: [] }).afterAll.push(fn); }
export function beforeAll(fn) { fn(); }

const fmt = (v) => { try { return JSON.stringify(v, (_, x) => (typeof x === 'bigint' ? `${x}n` : x)).slice(0, 200); } catch { return String(v); } };
const custom = {};
export function expect(actual, label) {
  const fail = (what) => { throw new Error(`${label ? `${label}: ` : ''}expected ${fmt(actual)} ${what}`); };
  const norm = (v) => (ArrayBuffer.isView(v) ? Array.from(v) : v);
  return {
    toEqual: (e) => { if (!isDeepStrictEqual(norm(actual), norm(e))) fail(`to equal ${fmt(e)}`); },
    toBe: (e) => { if (!Object.is(actual, e)) fail(`to be ${fmt(e)}`); },
    toBeLessThan: (e) => { if (!(actual < e)) fail(`< ${e}`); },
    toBeLessThanOrEqual: (e) => { if (!(actual <= e)) fail(`<= ${e}`); },
    toBeGreaterThan: (e) => { if (!(actual > e)) fail(`> ${e}`); },
    toBeGreaterThanOrEqual: (e) => { if (!(actual >= e)) fail(`>= ${e}`); },
    toBeTruthy: () => { if (!actual) fail('to be truthy'); },
    // matchers registered with expect.extend (vitest's contract: return { pass, message })
    ...Object.fromEntries(Object.entries(custom).map(([name, m]) => [name, (...args) => {
      const r = m.call({}, actual, ...args);
      if (!r.pass) throw new Error(r.message());
    }])),
  };
}
expect.extend = (matchers) => { Object.assign(custom, matchers); };

/** Runs every collected test; returns one record per test (skipped suites report their tests as skipped). */
export async function runCollected(log = console.log) {
  const results = [];
  for (const s of suites) {
    for (const t of s.tests) {
      if (s.skip) { results.push({ suite: s.name, test: t.name, status: 'skipped' }); continue; }
      const t0 = performance.now();
      try {
        await t.fn();
        results.push({ suite: s.name, test: t.name, status: 'passed', ms: performance.now() - t0 });
      } catch (e) {
        results.push({ suite: s.name, test: t.name, status: 'failed', ms: performance.now() - t0, error: String(e?.message ?? e).slice(0, 2000) });
      }
      const r = results[results.length - 1];
      log(`${r.status === 'passed' ? 'ok  ' : 'FAIL'} ${s.name} > ${t.name}${r.error ? `\n     ${r.error.split('\n')[0]}` : ''}`);
    }
    for (const f of s.afterAll) await f();
  }
  return results;
}
