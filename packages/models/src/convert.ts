// FarSkip conversion (DESIGN §2): the weights stay as they are; only which residual stream each sub-block reads
// changes. A converted model runs with its FarSkip options by default, and saving it records them in
// config.json under 'farskip', so loading the checkpoint gives the converted model back.
import { layerPlan } from '@farskip/layers';
import type { FarSkipOptions } from '@farskip/layers';
import type { CausalLM } from './model.js';

/** Switches `model` to FarSkip connectivity (in place; returns it). `null` restores the original connectivity. */
export function convertToFarSkip(model: CausalLM, options: FarSkipOptions | null = {}): CausalLM {
  layerPlan(model.spec.layers, options); // validates the options against the model (throws with the reason)
  model.farskip = options === null ? null : { ...options };
  return model;
}

/** The config.json of a model: the loaded one, with the FarSkip options recorded (or removed). */
export function configWithFarSkip(raw: Record<string, unknown>, farskip: FarSkipOptions | null): Record<string, unknown> {
  const out: Record<string, unknown> = { ...raw };
  if (farskip) out.farskip = { mode: farskip.mode ?? 'full', ...farskip };
  else delete out.farskip;
  return out;
}
