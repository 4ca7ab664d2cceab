// Runs operations with graphql-ws's own client (the reference implementation of
// graphql-transport-ws) and prints how each ended, as JSON, for tests/test_one_pipeline.py.
//
// stdin: {"url": "ws://...", "token": "...", "operations": {"name": {"query": ..., ...}}}
// stdout: {"name": {"ended": "complete" | "error", "results": [...], "errors": [...]}}
import { createClient } from "graphql-ws";
import WebSocket from "ws";

let input = "";
for await (const chunk of process.stdin) input += chunk;
const { url, token, operations } = JSON.parse(input);

const client = createClient({
  url,
  webSocketImpl: WebSocket,
  connectionParams: token ? { Authorization: `Bearer ${token}` } : {},
  retryAttempts: 0,
});

const outcomes = {};
for (const [name, payload] of Object.entries(operations)) {
  outcomes[name] = await new Promise((resolve) => {
    const results = [];
    client.subscribe(payload, {
      next: (result) => results.push(result),
      error: (errors) => resolve({ ended: "error", results, errors }),
      complete: () => resolve({ ended: "complete", results, errors: [] }),
    });
  });
}
await client.dispose();
process.stdout.write(JSON.stringify(outcomes));
