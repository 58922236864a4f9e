// placeholder until the step library lands: no step kinds yet
import { z } from 'zod';
import { StepConfigError, type Step, type StepContext } from '../step.js';

export const stepSchema = z.record(z.string(), z.unknown());
export type StepConfig = z.infer<typeof stepSchema>;

export function compileStep(config: StepConfig, _ctx: StepContext): Step {
  const kind = Object.keys(config)[0] ?? '';
  throw new StepConfigError(`unknown step "${kind}"`, [kind]);
}
