/**
 * decode: turn the MQTT payload into `ev.value`. Any failure, whatever the
 * decoder threw, becomes StepFailure("decode <format>: <why>").
 */
import { isUtf8 } from 'node:buffer';
import { createRequire } from 'node:module';
import { Decoder } from 'cbor-x';
import { z } from 'zod';
import { StepConfigError, StepFailure, type Step, type Working } from '../step.js';
import { setOwn } from './value.js';
import { parseJsonExact } from '../../core/numbers.js';

export const DECODE_FORMATS = ['json', 'cbor', 'number', 'text', 'raw', 'sparkplug_b'] as const;
export type DecodeFormat = (typeof DECODE_FORMATS)[number];

/** `decode: json` is short for `decode: { format: json }` (one schema, so a bad format is named as such). */
export const decodeOptions = z.preprocess(
  (v) => (typeof v === 'string' ? { format: v } : v),
  z.strictObject({
    format: z.enum(DECODE_FORMATS),
    /** number/text: the field that holds the value (default "value") */
    field: z.string().min(1).optional(),
    /** sparkplug_b: metric values as top-level fields by metric name */
    flatten: z.boolean().optional(),
  }),
);
export type DecodeOptions = z.infer<typeof decodeOptions>;

// sparkplug-payload is CommonJS; its decoder is protobufjs' static code (protobufjs/minimal, no code generation)
interface SparkplugCodec {
  decodePayload(payload: Uint8Array): Record<string, unknown>;
}
const require = createRequire(import.meta.url);
let sparkplug: SparkplugCodec | null = null;
function sparkplugCodec(): SparkplugCodec {
  sparkplug ??= (require('sparkplug-payload') as { get(ns: string): SparkplugCodec }).get('spBv1.0');
  return sparkplug;
}

const cbor = new Decoder({ mapsAsObjects: true, useRecords: false });
const utf8 = new TextDecoder('utf-8', { fatal: true });
const NUMBER = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;

export function compileDecode(options: DecodeOptions): Step {
  const o = options;
  const format = o.format;
  if (o.field !== undefined && format !== 'number' && format !== 'text') {
    throw new StepConfigError(`decode ${format}: "field" applies to number and text only`, ['decode', 'field']);
  }
  if (o.flatten !== undefined && format !== 'sparkplug_b') {
    throw new StepConfigError(`decode ${format}: "flatten" applies to sparkplug_b only`, ['decode', 'flatten']);
  }
  const field = o.field ?? 'value';
  const decode = decoder(format, field, o.flatten === true);
  if (format === 'sparkplug_b') sparkplugCodec();
  const prefix = `decode ${format}: `;
  return {
    kind: 'decode',
    run(ev: Working): Working {
      try {
        ev.value = decode(ev.payload);
      } catch (err) {
        throw new StepFailure(prefix + (err instanceof Error ? err.message : String(err)));
      }
      return ev;
    },
  };
}

function decoder(format: DecodeFormat, field: string, flatten: boolean): (payload: Buffer) => unknown {
  switch (format) {
    case 'json':
      return (payload) => {
        if (payload.length === 0) throw new Error('empty payload');
        if (!isUtf8(payload)) throw new Error('not valid UTF-8');
        return parseJsonExact(payload.toString('utf8'));
      };
    case 'cbor':
      return (payload) => {
        if (payload.length === 0) throw new Error('empty payload');
        return cbor.decode(payload) as unknown;
      };
    case 'number':
      return (payload) => {
        const text = payload.toString('latin1').trim();
        if (!NUMBER.test(text))
          throw new Error(text.length === 0 ? 'empty payload' : `not a number: ${JSON.stringify(text.slice(0, 40))}`);
        const n = Number(text);
        if (!Number.isFinite(n)) throw new Error(`out of range: ${text.slice(0, 40)}`);
        return { [field]: n };
      };
    case 'text':
      return (payload) => ({ [field]: utf8.decode(payload) });
    case 'raw':
      return (payload) => payload;
    case 'sparkplug_b':
      return (payload) => {
        const decoded = plain(sparkplugCodec().decodePayload(payload)) as Record<string, unknown>;
        return flatten ? flattenMetrics(decoded) : decoded;
      };
  }
}

/** protobufjs gives 64-bit integers as Long objects: numbers where exact, else decimal strings. */
function plain(value: unknown): unknown {
  if (typeof value !== 'object' || value === null || value instanceof Uint8Array) return value;
  if (Array.isArray(value)) return value.map(plain);
  if (isLong(value)) {
    const n = value.toNumber();
    return Number.isSafeInteger(n) ? n : value.toString();
  }
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) if (v !== undefined) setOwn(out, k, plain(v));
  return out;
}

function isLong(value: object): value is { toNumber(): number; toString(): string } {
  return (
    'low' in value &&
    'high' in value &&
    'unsigned' in value &&
    typeof (value as { toNumber?: unknown }).toNumber === 'function'
  );
}

/** `{timestamp, seq, <metric name>: value, ...}`; a metric without a name (alias only) becomes `alias_<n>`. */
function flattenMetrics(decoded: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(decoded)) if (k !== 'metrics') setOwn(out, k, v);
  const metrics = Array.isArray(decoded.metrics) ? (decoded.metrics as Array<Record<string, unknown>>) : [];
  for (const m of metrics) {
    const name = typeof m.name === 'string' && m.name !== '' ? m.name : `alias_${String(m.alias)}`;
    setOwn(out, name, m.value ?? null);
  }
  return out;
}
