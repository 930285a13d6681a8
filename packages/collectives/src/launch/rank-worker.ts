// One threads-launched rank: publishes its bootstrap where initCommunicator() finds it, makes argv look like
// `node script args`, and imports the user's script. An exception escapes to the launcher as the worker's
// 'error' event, which is how the launcher tells every other rank at once that this one died.
import { pathToFileURL } from 'node:url';
import { parentChannel } from '../threads/runtime.js';
import type { ThreadsBootstrap } from '../threads/communicator.js';
import { THREADS_BOOT_KEY } from './init.js';

const { data } = parentChannel();
const { boot, script, args } = data as { boot: ThreadsBootstrap; script: string; args: string[] };
(globalThis as Record<symbol, unknown>)[THREADS_BOOT_KEY] = boot;
process.argv = [process.argv[0]!, script, ...args];
await import(script.startsWith('file:') ? script : pathToFileURL(script).href);
