// Shared setup of the native-backend test files: load once, the skip reason, the ISA paths to cover.

import { ISA_NAMES, loadNativeBackend, nativeLibraryStatus, type NativeBackend } from '../src/backend/native/index.js';

let nb: NativeBackend | null = null;
let loadError = '';
try { nb = loadNativeBackend(); } catch (e) { loadError = (e as Error).message; }

export const native = nb;
export const skipReason = nb ? '' : `native library not loaded: ${loadError || nativeLibraryStatus().reason}`;
export const skipSuffix = skipReason ? ` (skipped: ${skipReason})` : '';
/** Every ISA path this CPU supports, lowest first. */
export const ISAS = nb ? ISA_NAMES.slice(0, ISA_NAMES.indexOf(nb.supportedIsa()) + 1) : [];
export const originalIsa = nb?.isa() as (typeof ISA_NAMES)[number] | undefined;
