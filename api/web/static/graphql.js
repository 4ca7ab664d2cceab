// GraphQL over HTTP for the dashboard, and the sign-in session it carries.
//
// The session (access token, refresh token, expiry) lives in sessionStorage: one tab, gone when
// the tab closes. Refresh tokens are good once, so concurrent callers share one refresh.

const STORAGE_KEY = "mapi-ews-admin.session";
// Refresh this long before the access token runs out, so no request carries an expired one.
const REFRESH_MARGIN_MS = 30_000;
// A request the server throttled (its budget of query cost is short) waits as it says and is
// sent again, this many times at most.
const THROTTLED_RETRIES = 5;

const SESSION_FIELDS = `accessToken refreshToken expiresAt
  viewer { username role domain permissions }
  userErrors { field code message }`;
const LOGIN = `mutation SignIn($username: String!, $password: String!) {
  login(input: {username: $username, password: $password}) { ${SESSION_FIELDS} }
}`;
const REFRESH = `mutation Refresh($refreshToken: String!) {
  refreshAccessToken(input: {refreshToken: $refreshToken}) { ${SESSION_FIELDS} }
}`;
const LOGOUT = `mutation SignOut($refreshToken: String!) {
  logout(input: {refreshToken: $refreshToken}) { userErrors { code } }
}`;

/** The sign-in is over (expired, revoked or signed out elsewhere): sign in again. */
export class SessionExpired extends Error {
  constructor() {
    super("Your session has expired. Please sign in again.");
  }
}

/** The server could not be reached, or did not answer with GraphQL. */
export class NetworkError extends Error {}

/** The server answered with GraphQL errors; `code` is the first one's extensions.code. */
export class GraphQLError extends Error {
  constructor(errors) {
    super(errors[0]?.message ?? "The server refused the request.");
    this.errors = errors;
    this.code = errors[0]?.extensions?.code ?? null;
  }
}

function load() {
  try {
    const saved = JSON.parse(sessionStorage.getItem(STORAGE_KEY) ?? "null");
    return saved?.accessToken && saved?.refreshToken ? saved : null;
  } catch {
    return null;
  }
}

export class Api {
  constructor(endpoint = "/graphql") {
    this.endpoint = endpoint;
    this.session = load();
    this.refreshing = null;
    /** Called once when a session ends without the user signing out. */
    this.onExpired = () => {};
    /** Called with the seconds a throttled request waits before it is sent again, and with 0
     * once it went through. */
    this.onThrottled = () => {};
  }

  get signedIn() {
    return this.session !== null;
  }

  /** Signs in; the viewer, or the login's userErrors as a thrown Error with their message. */
  async signIn(username, password) {
    const body = await this.post(LOGIN, { username, password }, null);
    const payload = body.data?.login;
    if (!payload) throw new GraphQLError(body.errors ?? []);
    if (payload.userErrors.length) throw new Error(payload.userErrors[0].message);
    this.store(payload);
    return payload.viewer;
  }

  async signOut() {
    const session = this.session;
    this.forget();
    if (session) {
      // Ends the sign-in on the server too; signing out works even when that fails.
      await this.post(LOGOUT, { refreshToken: session.refreshToken }, null).catch(() => {});
    }
  }

  /** A current access token, refreshed first when it is about to expire. */
  async accessToken() {
    if (!this.session) throw new SessionExpired();
    if (Date.parse(this.session.expiresAt) - Date.now() < REFRESH_MARGIN_MS) await this.refresh();
    return this.session.accessToken;
  }

  refresh() {
    this.refreshing ??= this.refreshOnce().finally(() => {
      this.refreshing = null;
    });
    return this.refreshing;
  }

  async refreshOnce() {
    const session = this.session;
    if (!session) throw new SessionExpired();
    const body = await this.post(REFRESH, { refreshToken: session.refreshToken }, null);
    const payload = body.data?.refreshAccessToken;
    if (!payload || payload.userErrors.length) {
      this.expire();
      throw new SessionExpired();
    }
    this.store(payload);
    return payload.viewer;
  }

  /** Runs a query or mutation as the signed-in user; its data, or a thrown error. A throttled
   * request (nothing ran) waits as long as the server says, then is sent again. */
  async request(query, variables = {}) {
    let body = await this.signedPost(query, variables);
    for (let retry = 1; body.status === 429 && retry <= THROTTLED_RETRIES; retry++) {
      const seconds = body.retryAfter ?? body.errors?.[0]?.extensions?.retryAfter ?? 1;
      this.onThrottled(seconds);
      await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
      body = await this.signedPost(query, variables);
      if (body.status !== 429) this.onThrottled(0);
    }
    if (body.errors?.length) throw new GraphQLError(body.errors);
    return body.data;
  }

  async signedPost(query, variables) {
    let body = await this.post(query, variables, await this.accessToken());
    if (body.status === 401) {
      // The token was refused (expired early, or the key changed): one refresh, one retry.
      await this.refresh();
      body = await this.post(query, variables, this.session.accessToken);
      if (body.status === 401) {
        this.expire();
        throw new SessionExpired();
      }
    }
    return body;
  }

  async post(query, variables, token) {
    const headers = { "content-type": "application/json", accept: "application/json" };
    if (token) headers.authorization = `Bearer ${token}`;
    let response;
    try {
      response = await fetch(this.endpoint, {
        method: "POST",
        headers,
        body: JSON.stringify({ query, variables }),
      });
    } catch {
      throw new NetworkError("Cannot reach the server. Check the connection and try again.");
    }
    try {
      const retryAfter = Number.parseInt(response.headers.get("retry-after") ?? "", 10);
      return {
        status: response.status,
        retryAfter: Number.isNaN(retryAfter) ? null : retryAfter,
        ...(await response.json()),
      };
    } catch {
      throw new NetworkError(`The server answered ${response.status} without GraphQL.`);
    }
  }

  store(payload) {
    this.session = {
      accessToken: payload.accessToken,
      refreshToken: payload.refreshToken,
      expiresAt: payload.expiresAt,
    };
    sessionStorage.setItem(STORAGE_KEY, JSON.stringify(this.session));
  }

  forget() {
    this.session = null;
    sessionStorage.removeItem(STORAGE_KEY);
  }

  expire() {
    if (!this.session) return;
    this.forget();
    this.onExpired();
  }
}
