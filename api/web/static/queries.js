// The GraphQL documents the dashboard sends: one place to see what it asks of the API.

export const ACCOUNT_FIELDS =
  "id username emailAddress name lastLogin lastLoginProtocol activeSessionCount mapiEwsProtocols " +
  "mapiEwsEnabledAt";
export const USAGE_FIELDS = "enabled limit available";

export const VIEWER = `query Viewer { viewer { username role domain permissions } }`;
export const DOMAINS = `query Domains($after: String) {
  domains(first: 100, after: $after) {
    edges { node { name maxMapiEwsAccounts mapiEwsAccountManagement mapiEwsIdleReclaimDays
      mapiEwsUsage { enabled limit available } } }
    pageInfo { hasNextPage endCursor }
  }
}`;
const DOMAIN_FIELDS = "name maxMapiEwsAccounts mapiEwsAccountManagement mapiEwsIdleReclaimDays";
export const CREATE_DOMAIN = `mutation CreateDomain($name: String!, $max: Int, $manage: Boolean!, $idle: Int) {
  createDomain(input: {name: $name, maxMapiEwsAccounts: $max, mapiEwsAccountManagement: $manage,
      mapiEwsIdleReclaimDays: $idle}) {
    domain { ${DOMAIN_FIELDS} }
    userErrors { field code message }
  }
}`;
export const UPDATE_DOMAIN = `mutation UpdateDomain($name: String!, $max: Int, $manage: Boolean!, $idle: Int) {
  updateDomain(input: {name: $name, maxMapiEwsAccounts: $max, mapiEwsAccountManagement: $manage,
      mapiEwsIdleReclaimDays: $idle}) {
    domain { ${DOMAIN_FIELDS} }
    userErrors { field code message }
  }
}`;
export const REMOVE_DOMAIN = `mutation RemoveDomain($name: String!, $confirm: String!) {
  removeDomain(input: {name: $name, confirm: $confirm}) {
    removedAccounts sessionsEnding userErrors { field code message }
  }
}`;
export const MONTHLY_REPORT = `query MonthlyReport($month: String!, $after: String) {
  mapiEwsUsageReport(month: $month, first: 50, after: $after) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { node { domain peakEnabled enabledAtEnd limit } }
  }
}`;
export const TAB = `query Tab($domain: String!, $search: String, $orderBy: AccountOrder,
    $first: Int, $after: String, $last: Int, $before: String, $idleForDays: Int) {
  domain(name: $domain) { name mapiEwsAccountManagement }
  mapiEwsUsage(domain: $domain) { ${USAGE_FIELDS} }
  mapiEwsAccounts(domain: $domain, search: $search, orderBy: $orderBy, idleForDays: $idleForDays,
      first: $first, after: $after, last: $last, before: $before) {
    totalCount
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    edges { node { ${ACCOUNT_FIELDS} } }
  }
}`;
export const HISTORY = `query History($domain: String!, $username: String, $search: String,
    $after: String) {
  mapiEwsLoginEvents(domain: $domain, username: $username, search: $search, first: 25,
      after: $after) {
    pageInfo { hasNextPage endCursor }
    edges { node { id username protocol occurredAt clientName clientAddress allowed refusal count lastOccurredAt account { id } } }
  }
}`;
export const AUDIT = `query Audit($domain: String!, $action: AuditAction, $search: String,
    $after: String) {
  auditLog(domain: $domain, action: $action, search: $search, first: 25, after: $after) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { node { id occurredAt actor action target } }
  }
}`;
export const USAGE_HISTORY = `query UsageHistory($domain: String!, $from: Date!, $to: Date!) {
  mapiEwsUsageHistory(domain: $domain, from: $from, to: $to) { date peakEnabled enabledAtEnd limit }
}`;
export const EXPORT = `query Export($domain: String!, $search: String, $orderBy: AccountOrder,
    $idleForDays: Int, $after: String) {
  mapiEwsAccounts(domain: $domain, search: $search, orderBy: $orderBy, idleForDays: $idleForDays,
      first: 100, after: $after) {
    pageInfo { hasNextPage endCursor }
    edges { node { username emailAddress name lastLogin lastLoginProtocol activeSessionCount } }
  }
}`;
export const SUGGESTIONS = `query Suggestions($domain: String!, $search: String) {
  accounts(domain: $domain, search: $search, mapiEwsEnabled: false, first: 8,
      orderBy: {field: USERNAME}) {
    edges { node { id username name emailAddress } }
  }
}`;
export const ENABLE = `mutation Enable($domain: String!, $usernames: [String!]!,
    $protocols: [MailProtocol!]) {
  enableMapiEws(input: {domain: $domain, usernames: $usernames, protocols: $protocols}) {
    accounts { username }
    usage { ${USAGE_FIELDS} }
    unchanged
    userErrors { field code message }
  }
}`;
export const DISABLE = `mutation Disable($domain: String!, $usernames: [String!]!) {
  disableMapiEws(input: {domain: $domain, usernames: $usernames}) {
    accounts { username }
    usage { ${USAGE_FIELDS} }
    sessionsEnding
    unchanged
    userErrors { field code message }
  }
}`;
export const DISCONNECT = `mutation Disconnect($domain: String!, $usernames: [String!]!) {
  disconnectMapiEws(input: {domain: $domain, usernames: $usernames}) {
    sessionsEnding
    userErrors { field code message }
  }
}`;
export const RECLAIM = `mutation Reclaim($domain: String!, $days: Int!, $dryRun: Boolean!) {
  reclaimIdleMapiEws(input: {domain: $domain, idleForDays: $days, dryRun: $dryRun}) {
    accounts { username name lastLogin lastLoginProtocol }
    usage { ${USAGE_FIELDS} }
    dryRun sessionsEnding
    userErrors { field code message }
  }
}`;
export const ACCOUNT_SESSIONS = `query AccountSessions($domain: String!, $username: String!) {
  mapiEwsSessions(domain: $domain, username: $username, first: 20) {
    totalCount
    edges { node { id protocol clientName clientAddress startedAt } }
  }
}`;
export const DOMAIN_USAGE_UPDATES = `subscription DomainUsage {
  mapiEwsDomainUsageUpdates { domain }
}`;
export const USAGE_UPDATES = `subscription Usage($domain: String) {
  mapiEwsUsageUpdates(domain: $domain) { ${USAGE_FIELDS} }
}`;
export const LOGIN_UPDATES = `subscription Logins($domain: String) {
  mapiEwsLoginUpdates(domain: $domain) {
    id username protocol occurredAt lastOccurredAt allowed refusal clientName clientAddress
    account { ${ACCOUNT_FIELDS} mapiEwsEnabled }
  }
}`;
export const ACCOUNT_CHANGES = `subscription Changes($domain: String) {
  mapiEwsAccountChanges(domain: $domain) {
    kind actor occurredAt
    account { ${ACCOUNT_FIELDS} }
    usage { ${USAGE_FIELDS} }
  }
}`;
export const SESSION_CHANGES = `subscription Sessions($domain: String) {
  mapiEwsSessionChanges(domain: $domain) {
    kind reason occurredAt
    session { username protocol clientName account { username activeSessionCount } }
  }
}`;
export const SET_PROTOCOLS = `mutation SetProtocols($domain: String!, $usernames: [String!]!,
    $protocols: [MailProtocol!]!) {
  setMapiEwsProtocols(input: {domain: $domain, usernames: $usernames, protocols: $protocols}) {
    accounts { ${ACCOUNT_FIELDS} }
    sessionsEnding
    userErrors { field code message }
  }
}`;
const POLICY_FIELDS = "mode allowUnnamedClients updatedAt updatedBy rules { pattern protocol belowVersion }";
const CLIENT_FIELDS = "clientName protocol accounts logins refusedLogins lastSeenAt allowedNow";
export const CLIENT_ACCESS = `query ClientAccess($domain: String!) {
  clientAccessPolicy(domain: $domain) { ${POLICY_FIELDS} }
  mapiEwsClients(domain: $domain, days: 30) { ${CLIENT_FIELDS} }
}`;
export const SET_CLIENT_ACCESS = `mutation SetClientAccess($domain: String!, $mode: ClientAccessMode!,
    $rules: [ClientAccessRuleInput!]!, $unnamed: Boolean!, $dryRun: Boolean!) {
  setClientAccessPolicy(input: {domain: $domain, mode: $mode, rules: $rules,
      allowUnnamedClients: $unnamed, dryRun: $dryRun}) {
    policy { ${POLICY_FIELDS} }
    sessionsEnding
    refusedClients { ${CLIENT_FIELDS} }
    userErrors { field code message }
  }
}`;
