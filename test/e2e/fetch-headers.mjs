// Preload (node --import ./fetch-headers.mjs ...) that adds the headers in
// $MANDATE_FETCH_HEADERS (a JSON object, e.g. {"Authorization":"Bearer x"}) to
// every outgoing HTTP request that does not already set them.
//
// The conformance CLI has no flag for request headers; this lets the tests run
// it against a gateway that requires a bearer token. It patches the global
// fetch (used by the MCP SDK transports) and installs an undici global
// dispatcher that decorates requests made with undici's request() (used by
// some conformance checks), when undici can be found.
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";

const extra = JSON.parse(process.env.MANDATE_FETCH_HEADERS || "{}");
const names = Object.keys(extra);

if (names.length > 0) {
  const origFetch = globalThis.fetch;
  globalThis.fetch = function (input, init) {
    const base =
      init && init.headers !== undefined
        ? init.headers
        : input instanceof Request
          ? input.headers
          : undefined;
    const headers = new Headers(base);
    for (const k of names) if (!headers.has(k)) headers.set(k, extra[k]);
    return origFetch.call(this, input, { ...(init || {}), headers });
  };

  const modules = process.env.MANDATE_NPM_MODULES;
  if (modules && fs.existsSync(path.join(modules, "undici", "package.json"))) {
    const require = createRequire(path.join(modules, "noop.js"));
    const undici = require("undici");
    const lower = names.map((k) => k.toLowerCase());
    const addHeaders = (h) => {
      if (h == null) return { ...extra };
      if (Array.isArray(h)) {
        const have = new Set();
        for (let i = 0; i < h.length; i += 2) have.add(String(h[i]).toLowerCase());
        const out = h.slice();
        names.forEach((k, i) => {
          if (!have.has(lower[i])) out.push(k, extra[k]);
        });
        return out;
      }
      const entries =
        typeof h[Symbol.iterator] === "function" && !(typeof h === "string") ? [...h] : Object.entries(h);
      const have = new Set(entries.map(([k]) => String(k).toLowerCase()));
      const out = Object.fromEntries(entries);
      names.forEach((k, i) => {
        if (!have.has(lower[i])) out[k] = extra[k];
      });
      return out;
    };
    const agent = new undici.Agent().compose(
      (dispatch) => (opts, handler) => dispatch({ ...opts, headers: addHeaders(opts.headers) }, handler),
    );
    undici.setGlobalDispatcher(agent);
  }
}
