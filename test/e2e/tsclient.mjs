// MCP client built on the official TypeScript SDK (@modelcontextprotocol/sdk),
// used by the end-to-end tests to check that Mandate works with a client other
// than the Go SDK.
//
// Usage:
//   node tsclient.mjs [options] --http URL
//   node tsclient.mjs [options] --stdio CMD [ARG...]   (--stdio takes the rest)
//
// Options:
//   --call NAME[=JSONARGS]   call tool NAME with the JSON object JSONARGS
//                            (default {}); repeatable, calls run in order
//   --header 'Name: value'   extra HTTP request header (repeatable, --http only)
//   --timeout MS             per-request timeout (default 30000)
//   --no-list                do not list tools
//
// It connects, lists all tools (following nextCursor), runs the calls and
// prints ONE JSON object to stdout:
//   {"server": {...}, "tools": [names], "calls": {name: CallToolResult}}
// A call that fails at the protocol level is recorded as
//   {"error": {"code": N, "message": "...", "data": ...}}
// and makes the exit code 2. Failing to connect or to list tools prints the
// error to stderr and exits 1. A tool result with isError:true is a result,
// not a failure.
//
// The SDK is loaded from $MANDATE_NPM_MODULES, else from the repository's
// .cache/npm/node_modules (the layout scripts/test installs), else by a bare
// import.
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

function usage(msg) {
  if (msg) process.stderr.write(`tsclient: ${msg}\n`);
  process.stderr.write(
    "usage: node tsclient.mjs [--call NAME=JSON]... [--header 'K: V']... [--timeout MS] (--http URL | --stdio CMD ARG...)\n",
  );
  process.exit(1);
}

function parseArgs(argv) {
  const opts = { calls: [], headers: {}, timeout: 30000, list: true };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => {
      if (i + 1 >= argv.length) usage(`${a} needs a value`);
      return argv[++i];
    };
    switch (a) {
      case "--http":
        opts.http = next();
        break;
      case "--stdio":
        opts.stdio = argv.slice(i + 1);
        if (opts.stdio.length === 0) usage("--stdio needs a command");
        i = argv.length;
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
            usage(`--call ${name}: arguments are not JSON: ${e.message}`);
          }
        }
        if (!name) usage("--call needs a tool name");
        opts.calls.push({ name, args });
        break;
      }
      case "--header": {
        const v = next();
        const c = v.indexOf(":");
        if (c <= 0) usage(`--header ${v}: want 'Name: value'`);
        opts.headers[v.slice(0, c).trim()] = v.slice(c + 1).trim();
        break;
      }
      case "--timeout":
        opts.timeout = Number(next());
        if (!Number.isFinite(opts.timeout) || opts.timeout <= 0) usage("bad --timeout");
        break;
      case "--no-list":
        opts.list = false;
        break;
      default:
        usage(`unknown argument ${a}`);
    }
  }
  if (!opts.http === !opts.stdio) usage("give exactly one of --http or --stdio");
  return opts;
}

// resolveExport maps a package subpath through the package's "exports" map,
// preferring the "import" condition, the way Node's ESM resolver would.
function resolveExport(pkgDir, subpath) {
  const pkg = JSON.parse(fs.readFileSync(path.join(pkgDir, "package.json"), "utf8"));
  const key = "./" + subpath;
  const pick = (target) => {
    if (typeof target === "string") return target;
    if (target && typeof target === "object") {
      for (const cond of ["import", "node", "default"]) {
        if (cond in target) {
          const r = pick(target[cond]);
          if (r) return r;
        }
      }
    }
    return null;
  };
  const exp = pkg.exports;
  if (exp && typeof exp === "object") {
    if (key in exp) {
      const t = pick(exp[key]);
      if (t) return path.join(pkgDir, t);
    }
    for (const [pattern, target] of Object.entries(exp)) {
      const star = pattern.indexOf("*");
      if (star < 0) continue;
      const pre = pattern.slice(0, star);
      const post = pattern.slice(star + 1);
      if (key.startsWith(pre) && key.endsWith(post) && key.length >= pre.length + post.length) {
        const mid = key.slice(pre.length, key.length - post.length);
        const t = pick(target);
        if (t) return path.join(pkgDir, t.replace("*", mid));
      }
    }
  }
  return path.join(pkgDir, subpath);
}

function modulesDir() {
  const candidates = [];
  if (process.env.MANDATE_NPM_MODULES) candidates.push(process.env.MANDATE_NPM_MODULES);
  const here = path.dirname(fileURLToPath(import.meta.url));
  candidates.push(path.resolve(here, "..", "..", ".cache", "npm", "node_modules"));
  for (const c of candidates) {
    if (fs.existsSync(path.join(c, "@modelcontextprotocol", "sdk", "package.json"))) return c;
  }
  return null;
}

async function importSDK(subpath) {
  const dir = modulesDir();
  if (dir) {
    const file = resolveExport(path.join(dir, "@modelcontextprotocol", "sdk"), subpath);
    return import(pathToFileURL(file).href);
  }
  return import(`@modelcontextprotocol/sdk/${subpath}`);
}

function errorJSON(e) {
  const out = { message: e && e.message ? e.message : String(e) };
  if (e && e.code !== undefined) out.code = e.code;
  if (e && e.data !== undefined) out.data = e.data;
  return out;
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const { Client } = await importSDK("client/index.js");

  let transport;
  if (opts.http) {
    const { StreamableHTTPClientTransport } = await importSDK("client/streamableHttp.js");
    transport = new StreamableHTTPClientTransport(new URL(opts.http), {
      requestInit: { headers: opts.headers },
    });
  } else {
    const { StdioClientTransport } = await importSDK("client/stdio.js");
    const env = {};
    for (const [k, v] of Object.entries(process.env)) if (v !== undefined) env[k] = v;
    transport = new StdioClientTransport({
      command: opts.stdio[0],
      args: opts.stdio.slice(1),
      env,
      stderr: "inherit",
    });
  }

  const client = new Client({ name: "mandate-e2e-tsclient", version: "0.0.0" }, { capabilities: {} });
  const reqOpts = { timeout: opts.timeout };
  try {
    await client.connect(transport, reqOpts);
  } catch (e) {
    process.stderr.write(`tsclient: connect failed: ${e && e.stack ? e.stack : e}\n`);
    process.exit(1);
  }

  const out = { server: client.getServerVersion() ?? null, tools: [], calls: {} };
  let exitCode = 0;
  try {
    if (opts.list) {
      let cursor;
      for (let page = 0; page < 1000; page++) {
        const res = await client.listTools(cursor ? { cursor } : {}, reqOpts);
        for (const t of res.tools ?? []) out.tools.push(t.name);
        cursor = res.nextCursor;
        if (!cursor) break;
      }
    }
  } catch (e) {
    process.stderr.write(`tsclient: tools/list failed: ${e && e.stack ? e.stack : e}\n`);
    await client.close().catch(() => {});
    process.exit(1);
  }

  for (const { name, args } of opts.calls) {
    let key = name;
    for (let n = 2; key in out.calls; n++) key = `${name}#${n}`;
    try {
      out.calls[key] = await client.callTool({ name, arguments: args }, undefined, reqOpts);
    } catch (e) {
      out.calls[key] = { error: errorJSON(e) };
      exitCode = 2;
    }
  }

  if (opts.http && typeof transport.terminateSession === "function") {
    await transport.terminateSession().catch(() => {});
  }
  await client.close().catch(() => {});
  process.stdout.write(JSON.stringify(out) + "\n");
  process.exitCode = exitCode;
}

main().catch((e) => {
  process.stderr.write(`tsclient: ${e && e.stack ? e.stack : e}\n`);
  process.exit(1);
});
