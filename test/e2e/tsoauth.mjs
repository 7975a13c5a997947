// MCP client on the official TypeScript SDK (@modelcontextprotocol/sdk) that
// authorizes itself with OAuth before it lists tools and calls them: the
// end-to-end tests use it to check Mandate's embedded authorization server
// against a client other than the Go SDK.
//
// Usage:
//   node tsoauth.mjs --url MCP_URL --redirect-url URL [--client-metadata-url URL]
//                    [--username NAME] [--call NAME=JSON]...
//
// The password is read from $MANDATE_E2E_PASSWORD (never from the command
// line). With --client-metadata-url the client identifies itself by that
// Client ID Metadata Document URL (which the SDK requires to be https://);
// without it, it registers dynamically.
//
// The OAuthClientProvider keeps everything in memory. Its
// redirectToAuthorization plays the browser: it opens the authorization URL
// with fetch, keeps the cookies the server sets (Set-Cookie) itself, signs
// in on the login form, allows on the consent form, takes the code from the
// redirect to --redirect-url without following it, checks state and the
// RFC 9207 iss, and hands the code to transport.finishAuth. The SDK's
// connect fails once with UnauthorizedError after starting the flow (that is
// how its auth() reports "REDIRECT"), so the client then connects again with
// a new transport on the same provider, which now holds the tokens.
//
// It prints ONE JSON object to stdout:
//   {"tools": [names], "calls": {name: CallToolResult}, "auth": {...}}
// and exits 0; any failure goes to stderr with exit code 1.
import fs from "node:fs";
import path from "node:path";
import crypto from "node:crypto";
import { fileURLToPath, pathToFileURL } from "node:url";

function fail(msg) {
  process.stderr.write(`tsoauth: ${msg}\n`);
  process.exit(1);
}

function parseArgs(argv) {
  const opts = { calls: [], username: "alice" };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => {
      if (i + 1 >= argv.length) fail(`${a} needs a value`);
      return argv[++i];
    };
    switch (a) {
      case "--url":
        opts.url = next();
        break;
      case "--redirect-url":
        opts.redirectUrl = next();
        break;
      case "--client-metadata-url":
        opts.clientMetadataUrl = next();
        break;
      case "--username":
        opts.username = next();
        break;
      case "--call": {
        const v = next();
        const eq = v.indexOf("=");
        const name = eq < 0 ? v : v.slice(0, eq);
        let args = {};
        if (eq >= 0 && v.slice(eq + 1).trim() !== "") {
          try {
            args = JSON.parse(v.slice(eq + 1));
          } catch (e) {
            fail(`--call ${name}: arguments are not JSON: ${e.message}`);
          }
        }
        opts.calls.push({ name, args });
        break;
      }
      default:
        fail(`unknown argument ${a}`);
    }
  }
  if (!opts.url || !opts.redirectUrl) fail("--url and --redirect-url are required");
  opts.password = process.env.MANDATE_E2E_PASSWORD;
  if (!opts.password) fail("$MANDATE_E2E_PASSWORD is not set");
  return opts;
}

// The SDK is loaded the way tsclient.mjs loads it: from $MANDATE_NPM_MODULES,
// else the repository's .cache/npm/node_modules.
function resolveExport(pkgDir, subpath) {
  const pkg = JSON.parse(fs.readFileSync(path.join(pkgDir, "package.json"), "utf8"));
  const pick = (t) => {
    if (typeof t === "string") return t;
    if (t && typeof t === "object") {
      for (const c of ["import", "node", "default"]) if (c in t) return pick(t[c]);
    }
    return null;
  };
  for (const [pattern, target] of Object.entries(pkg.exports ?? {})) {
    const star = pattern.indexOf("*");
    const key = "./" + subpath;
    if (star < 0 ? pattern === key : key.startsWith(pattern.slice(0, star)) && key.endsWith(pattern.slice(star + 1))) {
      const t = pick(target);
      if (!t) continue;
      const mid = star < 0 ? "" : key.slice(star, key.length - (pattern.length - star - 1));
      return path.join(pkgDir, t.replace("*", mid));
    }
  }
  return path.join(pkgDir, subpath);
}

async function importSDK(subpath) {
  const here = path.dirname(fileURLToPath(import.meta.url));
  for (const dir of [process.env.MANDATE_NPM_MODULES, path.resolve(here, "..", "..", ".cache", "npm", "node_modules")]) {
    if (dir && fs.existsSync(path.join(dir, "@modelcontextprotocol", "sdk", "package.json"))) {
      return import(pathToFileURL(resolveExport(path.join(dir, "@modelcontextprotocol", "sdk"), subpath)).href);
    }
  }
  return import(`@modelcontextprotocol/sdk/${subpath}`);
}

// CookieJar is just enough of a browser's cookie store for one origin: it
// keeps name=value pairs from Set-Cookie and drops those expired by Max-Age.
class CookieJar {
  constructor() {
    this.cookies = new Map();
  }
  header() {
    return [...this.cookies].map(([k, v]) => `${k}=${v}`).join("; ");
  }
  take(res) {
    for (const sc of res.headers.getSetCookie()) {
      const [pair, ...attrs] = sc.split(";");
      const eq = pair.indexOf("=");
      if (eq <= 0) continue;
      const name = pair.slice(0, eq).trim();
      const maxAge = attrs.map((a) => /^\s*max-age=(-?\d+)/i.exec(a)).find(Boolean);
      if (maxAge && Number(maxAge[1]) <= 0) this.cookies.delete(name);
      else this.cookies.set(name, pair.slice(eq + 1).trim());
    }
  }
}

const attrRE = /([a-zA-Z-]+)\s*=\s*"([^"]*)"/g;
function attrs(s) {
  const out = {};
  for (const m of s.matchAll(attrRE)) out[m[1].toLowerCase()] = unescapeHTML(m[2]);
  return out;
}
function unescapeHTML(s) {
  return s
    .replace(/&#(\d+);/g, (_, d) => String.fromCodePoint(Number(d)))
    .replace(/&#x([0-9a-f]+);/gi, (_, h) => String.fromCodePoint(parseInt(h, 16)))
    .replace(/&quot;/g, '"')
    .replace(/&#39;/g, "'")
    .replace(/&lt;/g, "<")
    .replace(/&gt;/g, ">")
    .replace(/&amp;/g, "&");
}

// parseForm returns the page's form: its action, hidden values and the
// names of its other fields.
function parseForm(html) {
  const m = /<form\b([^>]*)>([\s\S]*?)<\/form>/i.exec(html);
  if (!m) return null;
  const form = { action: attrs(m[1]).action, hidden: new URLSearchParams(), names: [] };
  for (const f of m[2].matchAll(/<(input|button)\b([^>]*)>/gi)) {
    const a = attrs(f[2]);
    if (!a.name) continue;
    form.names.push(a.name);
    if (f[1].toLowerCase() === "input" && a.type === "hidden") form.hidden.set(a.name, a.value ?? "");
  }
  return form;
}

// browserAuthorize walks the login and consent pages from authorizationUrl
// to the redirect back to redirectUrl, and returns that redirect's URL.
async function browserAuthorize(authorizationUrl, { redirectUrl, username, password }, trace) {
  const jar = new CookieJar();
  const redirect = new URL(redirectUrl);
  const send = async (url, init = {}) => {
    const headers = new Headers(init.headers ?? {});
    const cookie = jar.header();
    if (cookie) headers.set("cookie", cookie);
    const res = await fetch(url, { ...init, headers, redirect: "manual" });
    jar.take(res);
    trace.push(`${init.method ?? "GET"} ${new URL(url).pathname} ${res.status}`);
    return res;
  };
  let url = new URL(authorizationUrl);
  let res = await send(url);
  for (let step = 0; step < 12; step++) {
    if (res.status >= 300 && res.status < 400) {
      const to = new URL(res.headers.get("location"), url);
      await res.body?.cancel();
      if (to.origin === redirect.origin && to.pathname === redirect.pathname) return to;
      url = to;
      res = await send(url);
      continue;
    }
    const html = await res.text();
    if (res.status !== 200) throw new Error(`${url.pathname}: status ${res.status}`);
    const form = parseForm(html);
    if (!form) throw new Error(`${url.pathname}: no form`);
    const body = form.hidden;
    if (form.names.includes("password")) {
      body.set("username", username);
      body.set("password", password);
    } else if (form.names.includes("action")) {
      body.set("action", "allow");
    } else {
      throw new Error(`${url.pathname}: a form that is neither login nor consent`);
    }
    url = new URL(form.action, url);
    res = await send(url, {
      method: "POST",
      body: body.toString(),
      headers: { "content-type": "application/x-www-form-urlencoded" },
    });
  }
  throw new Error("no redirect back to the client after 12 steps");
}

// MemoryProvider is an OAuthClientProvider that keeps its state in memory.
class MemoryProvider {
  constructor(opts, out) {
    this.opts = opts;
    this.out = out;
    this._state = crypto.randomBytes(16).toString("base64url");
    this.transport = undefined; // set by main before each connect
    if (opts.clientMetadataUrl) this.clientMetadataUrl = opts.clientMetadataUrl;
  }
  get redirectUrl() {
    return this.opts.redirectUrl;
  }
  get clientMetadata() {
    return {
      client_name: "Mandate e2e TypeScript client",
      redirect_uris: [this.opts.redirectUrl],
      grant_types: ["authorization_code"],
      response_types: ["code"],
      token_endpoint_auth_method: "none",
    };
  }
  state() {
    return this._state;
  }
  clientInformation() {
    return this._client;
  }
  saveClientInformation(info) {
    this._client = info;
    this.out.clientId = info.client_id;
  }
  tokens() {
    return this._tokens;
  }
  saveTokens(tokens) {
    this._tokens = tokens;
    this.out.tokenScope = tokens.scope ?? null;
    this.out.refreshToken = Boolean(tokens.refresh_token);
  }
  saveCodeVerifier(v) {
    this._verifier = v;
  }
  codeVerifier() {
    return this._verifier;
  }
  saveDiscoveryState(s) {
    this._discovery = s;
    this.out.authorizationServer = s.authorizationServerUrl;
    this.out.issuer = s.authorizationServerMetadata?.issuer ?? null;
    this.out.resource = s.resourceMetadata?.resource ?? null;
  }
  discoveryState() {
    return this._discovery;
  }
  async redirectToAuthorization(authorizationUrl) {
    this.out.authorizationRequests++;
    this.out.authorizationRequest = Object.fromEntries(authorizationUrl.searchParams);
    const back = await browserAuthorize(authorizationUrl, this.opts, this.out.browser);
    const q = back.searchParams;
    for (const k of ["code", "state", "iss"]) {
      if (q.getAll(k).length !== 1) throw new Error(`authorization response has ${q.getAll(k).length} ${k} parameters: ${back}`);
    }
    if (q.get("error")) throw new Error(`authorization error ${q.get("error")}: ${q.get("error_description")}`);
    if (q.get("state") !== this._state) throw new Error(`state ${q.get("state")}, want ${this._state}`);
    const issuer = this._discovery?.authorizationServerMetadata?.issuer;
    if (!issuer || q.get("iss") !== issuer) throw new Error(`iss ${q.get("iss")}, want the metadata's issuer ${issuer}`);
    this.out.iss = q.get("iss");
    await this.transport.finishAuth(q.get("code"));
  }
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const { Client } = await importSDK("client/index.js");
  const { StreamableHTTPClientTransport } = await importSDK("client/streamableHttp.js");
  const { UnauthorizedError } = await importSDK("client/auth.js");

  const out = { tools: [], calls: {}, auth: { authorizationRequests: 0, browser: [], connectAttempts: 0 } };
  const provider = new MemoryProvider(opts, out.auth);
  const connect = async () => {
    out.auth.connectAttempts++;
    const transport = new StreamableHTTPClientTransport(new URL(opts.url), { authProvider: provider });
    provider.transport = transport;
    const client = new Client({ name: "mandate-e2e-tsoauth", version: "0.0.0" }, { capabilities: {} });
    await client.connect(transport);
    return { client, transport };
  };

  let session;
  try {
    session = await connect();
  } catch (e) {
    if (!(e instanceof UnauthorizedError) || !provider.tokens()) throw e;
    session = await connect();
  }
  const { client, transport } = session;
  for (let cursor, page = 0; page < 100; page++) {
    const res = await client.listTools(cursor ? { cursor } : {});
    for (const t of res.tools ?? []) out.tools.push(t.name);
    cursor = res.nextCursor;
    if (!cursor) break;
  }
  for (const { name, args } of opts.calls) {
    out.calls[name] = await client.callTool({ name, arguments: args });
  }
  await transport.terminateSession().catch(() => {});
  await client.close().catch(() => {});
  process.stdout.write(JSON.stringify(out) + "\n");
}

main().catch((e) => fail(e && e.stack ? e.stack : String(e)));
