// graphql-http's server audit (the GraphQL over HTTP specification's own test suite) against a
// running server, for tests/test_http_spec.py. Node 18+ has fetch.
//
// argv[2]: the server's /graphql URL
// stdout: [{"id": ..., "name": ..., "status": "ok" | "notice" | "warn" | "error", "reason": ...}]
import { auditServer } from "graphql-http";

const results = await auditServer({ url: process.argv[2] });
const out = results.map((result) => ({
  id: result.id,
  name: result.name,
  status: result.status,
  reason: result.status === "ok" ? null : result.reason,
}));
process.stdout.write(JSON.stringify(out));
