// Apollo Client 4, with its development warnings on, against a running server, for
// tests/test_clients.py: the MAPI/EWS list and a second page (relayStylePagination), two
// queries that select different fields of the usage, an enable, and the cached usage read back
// without a request. Node 20 has fetch.
//
// Run it with `node --conditions=development` (Apollo's development build, its warnings on).
// argv[2]: the server's /graphql URL; argv[3]: a domain administrator's access token;
// argv[4]: an account of the domain without MAPI/EWS, to enable; argv[5] "control": select the
// usage without its id instead, which Apollo warns about (so a run without warnings means
// something)
// stdout: {"pages": [[username, ...], [...]], "merged": [...], "usage": {...}, "cached": {...},
//          "requests": [operationName, ...], "printed": [{"level", "text"}, ...]}
import { ApolloClient, HttpLink, InMemoryCache, gql, setLogVerbosity } from "@apollo/client";
import { loadDevMessages, loadErrorMessages } from "@apollo/client/dev";
import { relayStylePagination } from "@apollo/client/utilities";

const [url, token, username, mode] = process.argv.slice(2);
const usageId = mode === "control" ? "" : "id";
const printed = [];
for (const level of ["warn", "error", "log", "info", "debug"]) {
  console[level] = (...args) => printed.push({ level, text: args.map(String).join(" ") });
}
loadDevMessages();
loadErrorMessages();
setLogVerbosity("debug");

const requests = [];
const counted = (input, init) => {
  requests.push(JSON.parse(init.body).operationName);
  return fetch(input, init);
};
const client = new ApolloClient({
  link: new HttpLink({ uri: url, headers: { authorization: `Bearer ${token}` }, fetch: counted }),
  cache: new InMemoryCache({
    typePolicies: {
      Query: {
        fields: {
          mapiEwsAccounts: relayStylePagination(["domain", "search", "orderBy", "idleForDays"]),
        },
      },
    },
  }),
});

const LIST = gql`
  query List($after: String) {
    mapiEwsAccounts(first: 2, after: $after) {
      totalCount
      pageInfo { hasNextPage endCursor }
      edges { cursor node { id username lastLogin mapiEwsEnabled } }
    }
  }
`;
const USAGE = gql(`query Usage { mapiEwsUsage { ${usageId} enabled limit available } }`);
const USAGE_ENABLED = gql(`query UsageEnabled { mapiEwsUsage { ${usageId} enabled } }`);
const ENABLE = gql(`
  mutation Enable($usernames: [String!]!) {
    enableMapiEws(input: { usernames: $usernames }) {
      accounts { id username mapiEwsEnabled }
      usage { ${usageId} enabled available }
      userErrors { code message }
    }
  }
`);

const names = (result) => result.data.mapiEwsAccounts.edges.map((edge) => edge.node.username);
const list = client.watchQuery({ query: LIST });
const first = await new Promise((resolve, reject) => {
  const subscription = list.subscribe({
    next: (result) => {
      if (result.data) {
        subscription.unsubscribe();
        resolve(result);
      }
    },
    error: reject,
  });
});
const cursor = first.data.mapiEwsAccounts.pageInfo.endCursor;
const second = await list.fetchMore({ variables: { after: cursor } });
const merged = client.readQuery({ query: LIST });

await client.query({ query: USAGE });
// From the server again, with fewer fields: normalized by its id it merges into what is cached;
// without one Apollo replaces the cached object and warns that data may be lost.
await client.query({ query: USAGE_ENABLED, fetchPolicy: "network-only" });
const enabled = await client.mutate({ mutation: ENABLE, variables: { usernames: [username] } });
const cached = client.readQuery({ query: USAGE });

process.stdout.write(
  JSON.stringify({
    pages: [names(first), names(second)],
    merged: names({ data: merged }),
    total: merged.mapiEwsAccounts.totalCount,
    enabled: enabled.data.enableMapiEws,
    cached: cached?.mapiEwsUsage ?? null,
    requests,
    printed,
  }),
);
