/** What the gateway needs from an ingest mode (embedded broker or client of another broker). */
export interface Ingest {
  /** Opens the listener or connects; resolves when messages can flow. */
  start(): Promise<void>;
  /** Stops taking new connections and reading messages; what was read is handed over before it resolves, and still settles. */
  stopAccepting(): Promise<void>;
  /** Closes every connection once the acknowledgements settled so far are written. Call after the last settle was delivered. */
  close(): Promise<void>;
  /** For logs and the demo: where devices connect, e.g. `mqtt://127.0.0.1:41883`. */
  readonly address: string;
  readonly connectedClients: number;
}
