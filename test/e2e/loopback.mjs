// Preload (node --import ./loopback.mjs ...) that pins every listening
// TCP server that did not name a host to 127.0.0.1.
//
// @modelcontextprotocol/server-everything calls app.listen(PORT) without a
// host, which binds all interfaces. The end-to-end tests must only ever
// listen on loopback, so this module rewrites such calls before the server
// code runs.
import net from "node:net";

const HOST = process.env.MANDATE_LISTEN_HOST || "127.0.0.1";
const origListen = net.Server.prototype.listen;

function isPort(v) {
  return (
    typeof v === "number" ||
    (typeof v === "string" && v !== "" && /^\d+$/.test(v))
  );
}

net.Server.prototype.listen = function (...args) {
  if (args.length > 0 && isPort(args[0])) {
    if (typeof args[1] !== "string") {
      args.splice(1, 0, HOST);
    }
  } else if (
    args.length > 0 &&
    args[0] !== null &&
    typeof args[0] === "object" &&
    !(args[0] instanceof net.Server) &&
    args[0].path === undefined &&
    args[0].fd === undefined &&
    args[0].handle === undefined &&
    args[0]._handle === undefined &&
    args[0].host === undefined
  ) {
    args[0] = { ...args[0], host: HOST };
  } else if (args.length === 0 || typeof args[0] === "function") {
    args.unshift(0, HOST);
  }
  return origListen.apply(this, args);
};
