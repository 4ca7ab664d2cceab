// The page's live connection: graphql-ws's own client (vendor/graphql-ws, the reference
// implementation of graphql-transport-ws) carries every subscription of the page over one
// WebSocket. What is ours is the policy around it: a fresh access token on every connect, one
// token refresh when the server refuses it (4403), a growing, jittered delay between attempts,
// a status for the page, and a reload after a reconnection (events may have been missed).

import { createClient } from "./vendor/graphql-ws/client.js";

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
    let connectedBefore = false;
    let refused = false; // the last close refused the credentials
    let refreshed = false; // and they were refreshed once since the last success
    this.client = createClient({
      url,
      connectionParams,
      lazy: true,
      connectionAckWaitTimeout: ACK_TIMEOUT_MS,
      retryAttempts: Infinity,
      shouldRetry: () => true,
      retryWait: async (retries) => {
        if (refused && !refreshed) {
          // Credentials refused (the access token expired): refresh them once, retry at once.
          refreshed = true;
          try {
            await onForbidden();
            return;
          } catch {
            // The session is over (the page signs out): no further attempt.
            this.close();
            await new Promise(() => {});
          }
        }
        const ceiling = Math.min(MAX_DELAY_MS, FIRST_DELAY_MS * 2 ** retries);
        const retryInMs = Math.round(ceiling * (0.5 + Math.random() / 2));
        onStatus({ state: "offline", attempt: retries + 1, retryInMs });
        await new Promise((resolve) => setTimeout(resolve, retryInMs));
      },
      on: {
        connecting: () => onStatus({ state: connectedBefore ? "reconnecting" : "connecting" }),
        connected: () => {
          refused = refreshed = false;
          onStatus({ state: "live" });
          if (connectedBefore) onReconnected();
          connectedBefore = true;
        },
        closed: (event) => {
          refused = event?.code === FORBIDDEN;
        },
      },
    });
  }

  /** Starts a subscription; returns the function that stops it. A GraphQL error, or the
   * server ending it, reaches `error` or `complete` (the page decides what then). */
  subscribe(query, variables, { next, error, complete }) {
    let done = false;
    const finish = (handler, value) => {
      if (done) return;
      done = true;
      stop();
      handler?.(value);
    };
    const stop = this.client.subscribe(
      { query, variables },
      {
        next: (result) => {
          if (result.errors?.length) finish(error, result.errors);
          else if (!done) next(result.data);
        },
        error: (errors) => finish(error, errors),
        complete: () => finish(complete),
      },
    );
    return () => {
      done = true;
      stop();
    };
  }

  close() {
    this.client.dispose();
  }
}
