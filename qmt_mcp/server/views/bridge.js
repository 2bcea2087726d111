// The View side of MCP Apps (ext-apps protocol 2026-01-26), inlined into each view by server/apps.py.
// JSON-RPC over postMessage with the host: ui/initialize, then the host sends the tool's input and
// result; tools/call goes through the host to this server. Hand-written (about 80 lines) rather than
// the ext-apps App class, which with its dependencies would make each view some 500 KB.
"use strict";
const qmt = (() => {
  const PROTOCOL = "2026-01-26";
  const pending = new Map();
  const listeners = {};
  let nextId = 1;

  const send = (msg) => window.parent.postMessage({ jsonrpc: "2.0", ...msg }, "*");
  const request = (method, params) => new Promise((resolve, reject) => {
    const id = nextId++;
    pending.set(id, { resolve, reject });
    send({ id, method, params });
  });
  const on = (method, fn) => { (listeners[method] = listeners[method] || []).push(fn); };

  window.addEventListener("message", (ev) => {
    const m = ev.data;
    if (ev.source !== window.parent || !m || m.jsonrpc !== "2.0") return;
    if (m.method === undefined) {            // an answer to one of ours
      const p = pending.get(m.id);
      pending.delete(m.id);
      if (p) m.error ? p.reject(new Error(m.error.message)) : p.resolve(m.result);
    } else if (m.id !== undefined) {         // the host asks: teardown and ping need only an answer
      const known = m.method === "ui/resource-teardown" || m.method === "ping";
      send(known ? { id: m.id, result: {} } : { id: m.id, error: { code: -32601, message: "not supported" } });
    } else {
      (listeners[m.method] || []).forEach((fn) => fn(m.params || {}));
    }
  });

  // The host's theme: its CSS variables on :root (the views' CSS reads them, with fallbacks).
  function theme(ctx) {
    const vars = (ctx.styles && ctx.styles.variables) || {};
    for (const [k, v] of Object.entries(vars)) if (k.startsWith("--") && v) document.documentElement.style.setProperty(k, v);
    if (ctx.theme) document.documentElement.style.colorScheme = ctx.theme;
  }

  /** Connect; `onInput(arguments)` as the host sends the tool's input, `onResult(structuredContent,
   *  arguments)` once both its result and its input are in (a host may send them in either order). */
  async function start(name, onInput, onResult) {
    let args = null, result = null;
    const both = () => { if (args && result) onResult(result.structuredContent || {}, args); };
    on("ui/notifications/tool-input", (p) => { args = p.arguments || {}; onInput(args); both(); });
    on("ui/notifications/tool-result", (p) => { result = p; both(); });
    on("ui/notifications/host-context-changed", theme);
    const init = await request("ui/initialize", {
      appInfo: { name, version: "1" }, appCapabilities: {}, protocolVersion: PROTOCOL });
    theme((init && init.hostContext) || {});
    send({ method: "ui/notifications/initialized", params: {} });
    const size = () => send({ method: "ui/notifications/size-changed",
      params: { height: Math.ceil(document.documentElement.getBoundingClientRect().height) } });
    new ResizeObserver(size).observe(document.documentElement);
  }

  /** A tool of this server through the host: its structuredContent (the contract envelope). */
  async function call(name, args) {
    const r = await request("tools/call", { name, arguments: args });
    return (r && r.structuredContent) || { ok: false, error: { code: "INTERNAL", message: "no structured result" } };
  }

  /** An element; strings become text nodes (never markup: names and messages come from the broker). */
  function el(tag, attrs, ...children) {
    const svg = ["svg", "g", "rect", "line", "polygon", "text", "title"].includes(tag);
    const node = svg ? document.createElementNS("http://www.w3.org/2000/svg", tag) : document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "on") for (const [ev, fn] of Object.entries(v)) node.addEventListener(ev, fn);
      else if (v !== undefined && v !== null && v !== false) node.setAttribute(k, String(v));
    }
    for (const c of children.flat()) if (c !== undefined && c !== null) node.append(c instanceof Node ? c : String(c));
    return node;
  }

  const yuan = (v) => v === undefined || v === null ? "–" : Number(v).toLocaleString("en-US",
    { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  const signed = (v) => (v > 0 ? "+" : "") + yuan(v);
  const show = (id, ...children) => document.getElementById(id).replaceChildren(
    ...children.flat().filter((c) => c !== null && c !== undefined));
  return { start, call, el, yuan, signed, show };
})();
