// A small client of the graphql-transport-ws protocol
// (https://github.com/enisdenjo/graphql-ws/blob/master/PROTOCOL.md): one WebSocket carries every
// subscription of the page; when it drops, it reconnects by itself with a growing, jittered
// delay and starts every subscription again.

const PROTOCOL = "graphql-transport-ws";
const FIRST_DELAY_MS = 1_000;
const MAX_DELAY_MS = 30_000;
// The server must acknowledge connection_init within this time, or the attempt counts as failed.
const ACK_TIMEOUT_MS = 10_000;
// The close code with which the server refuses credentials.
const FORBIDDEN = 4403;

export class LiveConnection {
  /**
   * @param {object} options
   * @param {string} options.url ws:// or wss:// address of /graphql
   * @param {() => Promise<object>} options.connectionParams the connection_init payload
   * @param {(status: {state: string, attempt?: number, retryInMs?: number}) => void} options.onStatus
   * @param {() => void} options.onReconnected after a reconnection: events may have been missed
   * @param {() => Promise<void>} options.onForbidden the server refused the credentials
   */
  constructor({ url, connectionParams, onStatus, onReconnected, onForbidden }) {
    Object.assign(this, { url, connectionParams, onStatus, onReconnected, onForbidden });
    this.subscriptions = new Map();
    this.nextId = 1;
    this.socket = null;
    this.acknowledged = false;
    this.connectedBefore = false;
    this.failures = 0;
    this.timer = null;
    this.closed = false;
  }

  /** Starts a subscription; returns the function that stops it. */
  subscribe(query, variables, handlers) {
    const id = String(this.nextId++);
    this.subscriptions.set(id, { query, variables, ...handlers });
    if (this.acknowledged) this.start(id);
    else this.connect();
    return () => {
      if (this.subscriptions.delete(id) && this.acknowledged) this.send({ id, type: "complete" });
    };
  }

  close() {
    this.closed = true;
    clearTimeout(this.timer);
    this.subscriptions.clear();
    const socket = this.socket;
    this.socket = null;
    socket?.close(1000, "Signed out");
  }

  connect() {
    if (this.socket || this.closed) return;
    clearTimeout(this.timer);
    this.onStatus({ state: this.connectedBefore ? "reconnecting" : "connecting" });
    const socket = new WebSocket(this.url, PROTOCOL);
    this.socket = socket;
    this.timer = setTimeout(() => socket.close(4408, "Connection acknowledgement timeout"), ACK_TIMEOUT_MS);
    socket.onopen = async () => {
      let payload;
      try {
        payload = await this.connectionParams();
      } catch {
        socket.close(1000, "No credentials");
        return;
      }
      if (socket === this.socket) socket.send(JSON.stringify({ type: "connection_init", payload }));
    };
    socket.onmessage = (event) => {
      if (socket !== this.socket) return;
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        socket.close(4400, "Invalid message");
        return;
      }
      this.receive(message);
    };
    socket.onclose = (event) => this.closedWith(socket, event);
  }

  receive(message) {
    const subscription = this.subscriptions.get(message.id);
    switch (message.type) {
      case "connection_ack": {
        clearTimeout(this.timer);
        this.acknowledged = true;
        this.failures = 0;
        this.onStatus({ state: "live" });
        for (const id of this.subscriptions.keys()) this.start(id);
        if (this.connectedBefore) this.onReconnected();
        this.connectedBefore = true;
        break;
      }
      case "ping":
        this.send({ type: "pong" });
        break;
      case "next":
        if (message.payload?.errors?.length) {
          this.subscriptions.delete(message.id);
          subscription?.error?.(message.payload.errors);
        } else {
          subscription?.next(message.payload.data);
        }
        break;
      case "error":
        this.subscriptions.delete(message.id);
        subscription?.error?.(message.payload);
        break;
      case "complete":
        // The server ended it (we delete ours before sending complete).
        if (this.subscriptions.delete(message.id)) subscription?.complete?.();
        break;
      default:
        break;
    }
  }

  start(id) {
    const { query, variables } = this.subscriptions.get(id);
    this.send({ id, type: "subscribe", payload: { query, variables } });
  }

  send(message) {
    if (this.socket?.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(message));
  }

  async closedWith(socket, event) {
    if (socket !== this.socket) return;
    clearTimeout(this.timer);
    this.socket = null;
    this.acknowledged = false;
    if (this.closed) return;
    if (event.code === FORBIDDEN && this.failures === 0) {
      // Credentials refused (the access token expired): refresh them once and retry at once.
      this.failures += 1;
      try {
        await this.onForbidden();
      } catch {
        return; // the session is over; the page signs out
      }
      this.connect();
      return;
    }
    this.failures += 1;
    const ceiling = Math.min(MAX_DELAY_MS, FIRST_DELAY_MS * 2 ** (this.failures - 1));
    const retryInMs = Math.round(ceiling * (0.5 + Math.random() / 2));
    this.onStatus({ state: "offline", attempt: this.failures, retryInMs });
    this.timer = setTimeout(() => this.connect(), retryInMs);
  }
}
