// Times as the MAPI/EWS tab shows them: "3 minutes ago", with the exact time on hover.

const relative = new Intl.RelativeTimeFormat("en", { numeric: "auto" });
const exact = new Intl.DateTimeFormat("en", { dateStyle: "full", timeStyle: "long" });
const UNITS = [
  ["year", 365 * 24 * 3600],
  ["month", 30 * 24 * 3600],
  ["week", 7 * 24 * 3600],
  ["day", 24 * 3600],
  ["hour", 3600],
  ["minute", 60],
];

/** "just now", "3 minutes ago", "yesterday", "2 months ago" for an ISO 8601 instant. */
export function relativeTime(iso, now = Date.now()) {
  const seconds = (Date.parse(iso) - now) / 1000;
  if (Math.abs(seconds) < 45) return "just now";
  for (const [unit, size] of UNITS) {
    if (Math.abs(seconds) >= size || unit === "minute") {
      return relative.format(Math.round(seconds / size), unit);
    }
  }
  return "just now";
}

export function exactTime(iso) {
  return exact.format(new Date(iso));
}

/** The Last Login cell's content: the protocol and a relative time, or "Never". */
export function lastLoginCell(lastLogin, protocol, enabledAt = null) {
  if (!lastLogin) {
    const never = document.createElement("span");
    never.className = "never";
    never.textContent = "Never";
    if (!enabledAt) return [never];
    // Since when it has had a seat without a login: what makes it idle.
    const since = document.createElement("small");
    since.className = "since";
    const time = document.createElement("time");
    time.dateTime = enabledAt;
    time.title = exactTime(enabledAt);
    time.textContent = relativeTime(enabledAt);
    since.append("enabled ", time);
    return [never, " ", since];
  }
  const time = document.createElement("time");
  time.dateTime = lastLogin;
  time.title = exactTime(lastLogin);
  time.textContent = relativeTime(lastLogin);
  const badge = document.createElement("span");
  badge.className = `protocol ${(protocol ?? "").toLowerCase()}`;
  badge.textContent = protocol ?? "";
  return protocol ? [badge, " ", time] : [time];
}

// Why a login was refused, as an administrator reads it.
const REFUSALS = {
  MAPI_EWS_DISABLED: "MAPI/EWS is off",
  PROTOCOL_NOT_ALLOWED: "protocol not allowed for this account",
  CLIENT_NOT_ALLOWED: "client not allowed by the access policy",
};

export function refusalText(refusal) {
  return REFUSALS[refusal] ?? REFUSALS.MAPI_EWS_DISABLED;
}

/** "EWS only" for an account restricted to one protocol; "" for both. */
export function protocolsText(protocols) {
  return protocols && protocols.length === 1 ? `${protocols[0]} only` : "";
}
