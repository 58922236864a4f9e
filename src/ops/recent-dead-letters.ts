import type { DeadLetterRecord } from '../core/event.js';

/** A dead letter as /status shows it: the payload only as a short preview. */
export interface DeadLetterView {
  readonly at: string;
  readonly route: string;
  readonly step: string;
  readonly reason: string;
  readonly topic: string;
  readonly client_id: string;
  readonly payload_bytes: number;
  /** the first PREVIEW_CHARS characters as text (control characters as \uXXXX), or hex when not UTF-8 */
  readonly payload_preview: string;
}

export const PREVIEW_CHARS = 120;
const TEXT_CHARS = 200;

/**
 * The last few dead letters, in memory, for the status page: a ring of
 * `size` entries, each with a preview of at most PREVIEW_CHARS characters
 * (the whole payload stays only in the buffer's dead-letter store and the
 * Kafka copy). Previews are plain text: whoever shows them escapes them.
 */
export class RecentDeadLetters {
  private readonly ring: DeadLetterView[] = [];

  constructor(private readonly size = 20) {}

  add(records: readonly DeadLetterRecord[]): void {
    for (const r of records) {
      this.ring.push({
        at: new Date(r.at).toISOString(),
        route: clip(r.route),
        step: clip(r.step),
        reason: clip(r.reason),
        topic: clip(r.topic),
        client_id: clip(r.clientId),
        payload_bytes: r.payload.length,
        payload_preview: preview(r.payload),
      });
      if (this.ring.length > this.size) this.ring.shift();
    }
  }

  /** newest first */
  list(): DeadLetterView[] {
    return [...this.ring].reverse();
  }
}

function clip(text: string): string {
  return text.length > TEXT_CHARS ? `${text.slice(0, TEXT_CHARS)}…` : text;
}

/** Text when the start of the payload is UTF-8, else hex; control characters spelled out. */
export function preview(payload: Buffer): string {
  const head = payload.subarray(0, PREVIEW_CHARS * 4);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(head);
  } catch {
    // a cut in the middle of a character is still text
    const cut = new TextDecoder('utf-8').decode(head);
    text = cut.slice(0, -1).includes('\uFFFD') ? '' : cut.slice(0, -1);
    if (text === '') {
      const hex = payload.subarray(0, PREVIEW_CHARS / 2).toString('hex');
      return `hex ${hex}${payload.length > PREVIEW_CHARS / 2 ? '…' : ''}`;
    }
  }
  // eslint-disable-next-line no-control-regex
  const shown = text.replace(/[\u0000-\u001f\u007f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  const chars = [...shown];
  return chars.length > PREVIEW_CHARS || payload.length > head.length
    ? `${chars.slice(0, PREVIEW_CHARS).join('')}…`
    : shown;
}
