import { isUtf8 } from 'node:buffer';
import type { ClientWithParser, Connection, PacketParser, Warn } from './connection.js';

export interface PacketCounters {
  oversize_packets_total: number;
  malformed_publishes_total: number;
}

/**
 * Why a PUBLISH must close its connection, or null. mqtt-packet decodes the
 * topic with Buffer.toString, which turns ill-formed bytes into U+FFFD and
 * lets U+0000 through: the topic a device sent would then differ from the one
 * routed and forwarded. So the raw topic bytes are checked before it decodes
 * them, and the packet id after.
 */
function publishViolation(parser: PacketParser): string | null {
  const list = parser._list;
  const pos = parser._pos ?? 0;
  if (list === undefined || pos + 2 > list.length) return null; // too short: the parser's own error
  const end = pos + 2 + list.readUInt16BE(pos);
  if (end > list.length) return null;
  const topic = list.slice(pos + 2, end);
  if (!isUtf8(topic)) return 'topic is not well-formed UTF-8 [MQTT-1.5.3-1]';
  if (topic.includes(0)) return 'topic contains U+0000 [MQTT-1.5.3-2]';
  return null;
}

/**
 * MQTT 3.1.1 requires closing the connection on a topic that is not
 * well-formed UTF-8 or holds U+0000, and forbids packet id 0 on QoS 1/2
 * (MQTT-2.3.1-1); aedes accepts all three and would acknowledge them.
 */
export function checkPublishes(
  client: ClientWithParser,
  state: Connection,
  stats: PacketCounters | undefined,
  warn: Warn,
): void {
  const parser = client._parser;
  const original = parser?._parsePublish;
  if (parser === undefined || typeof original !== 'function' || typeof parser._emitError !== 'function') return;
  parser._parsePublish = function parsePublishChecked(this: PacketParser) {
    let violation = publishViolation(this);
    if (violation === null) {
      original.call(this);
      if (this.error !== null && this.error !== undefined) return;
      if ((this.packet?.qos ?? 0) > 0 && this.packet?.messageId === 0)
        violation = 'packet id 0 on a QoS 1/2 PUBLISH [MQTT-2.3.1-1]';
    }
    if (violation === null) return;
    state.closedByUs = true;
    if (stats !== undefined) stats.malformed_publishes_total++;
    warn(
      `malformed:${violation}`,
      { code: 'EH_ERR_INGEST_MALFORMED', client_id: client.id, remote: state.remote, reason: violation },
      'malformed publish; connection closed',
    );
    this._emitError!(new Error(`malformed publish: ${violation}`));
  };
}

/**
 * mqtt-packet (aedes' parser) has no size limit of its own and buffers a
 * packet whole before handing it over. Checking the remaining length as soon
 * as it is parsed closes the connection before a single payload byte is held.
 */
export function limitPacketSize(
  client: ClientWithParser,
  state: Connection,
  maxPacket: number,
  stats: PacketCounters | undefined,
  warn: Warn,
): void {
  const parser = client._parser;
  const original = parser?._parseLength;
  if (parser === undefined || typeof original !== 'function' || typeof parser._emitError !== 'function') return;
  parser._parseLength = function parseLengthWithLimit(this: typeof parser) {
    const ok = original.call(this);
    const length = this.packet?.length ?? 0;
    if (ok && length > maxPacket) {
      state.closedByUs = true;
      if (stats !== undefined) stats.oversize_packets_total++;
      warn(
        `packet:${state.remote}`,
        {
          code: 'EH_ERR_INGEST_PACKET_TOO_LARGE',
          client_id: client.id,
          remote: state.remote,
          bytes: length,
          limit: maxPacket,
        },
        'mqtt packet too large; connection closed',
      );
      this._emitError!(new Error(`packet of ${length} bytes exceeds max_packet_bytes ${maxPacket}`));
      return false;
    }
    return ok;
  };
}
