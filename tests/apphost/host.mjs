// A minimal MCP Apps host for tests/test_apps_browser.py, built from @modelcontextprotocol/ext-apps'
// host side (app-bridge) and the TypeScript SDK client, bundled for the browser by esbuild.
//
// It does what a chat client does: connect to the server over streamable HTTP declaring the MCP Apps
// extension, list the tools, and for a tool the model calls, read its view (`_meta.ui.resourceUri`),
// render it in a sandboxed iframe under a CSP that allows no network, and hand it the tool's input and
// result through an AppBridge, which relays the view's own tools/call to the server. Like a real host
// it keeps app-only tools (`visibility: ["app"]`) out of the model's tool list and refuses the model's
// call of one.
import { Client, StreamableHTTPClientTransport } from "@modelcontextprotocol/client";
import {
  AppBridge, PostMessageTransport, RESOURCE_MIME_TYPE, getToolUiResourceUri, isToolVisibilityAppOnly,
} from "@modelcontextprotocol/ext-apps/app-bridge";

const HOST = { name: "qmt-test-host", version: "1.0.0" };
const EXTENSION_ID = "io.modelcontextprotocol/ui";
// What a host's sandbox allows a view: inline script and style, data: images; no fetch, no CDN.
const CSP = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:";
// A few of the host theme variables (ext-apps McpUiStyleVariableKey), as a light host might set them.
const THEME = {
  "--color-background-primary": "#ffffff", "--color-background-secondary": "#f6f6f4",
  "--color-text-primary": "#1f1f1e", "--color-text-secondary": "#6b6a66", "--color-border-primary": "#dedcd6",
  "--font-sans": "system-ui, sans-serif", "--border-radius-md": "6px",
};

let client = null;
let tools = new Map();

async function connect(url, token) {
  client = new Client(HOST, { capabilities: { extensions: { [EXTENSION_ID]: { mimeTypes: [RESOURCE_MIME_TYPE] } } } });
  await client.connect(new StreamableHTTPClientTransport(new URL(url), {
    requestInit: { headers: { Authorization: `Bearer ${token}` } } }));
  tools = new Map((await client.listTools()).tools.map((t) => [t.name, t]));
  return {
    protocolVersion: client.getNegotiatedProtocolVersion?.() ?? null,
    serverExtensions: Object.keys(client.getServerCapabilities()?.extensions ?? {}),
    tools: [...tools.values()].map((t) => ({ name: t.name, ui: t._meta?.ui ?? null })),
  };
}

/** The tools the model is shown: every tool but the app-only ones. */
function modelTools() {
  return [...tools.values()].filter((t) => !isToolVisibilityAppOnly(t)).map((t) => t.name);
}

/** The model calls `name`: its structured result; a tool with a view gets it rendered in `slot`. */
async function call(name, args, slot) {
  const tool = tools.get(name);
  if (!tool) throw new Error(`no tool ${name}`);
  if (isToolVisibilityAppOnly(tool)) return { refusedByHost: true };
  const resultPromise = client.callTool({ name, arguments: args });
  const uri = getToolUiResourceUri(tool);
  if (!uri || !slot) return (await resultPromise).structuredContent;
  const { contents } = await client.readResource({ uri });
  if (contents.length !== 1 || contents[0].mimeType !== RESOURCE_MIME_TYPE) throw new Error(`${uri}: not an MCP App`);
  const html = contents[0].text.replace(/<head>/i, `<head><meta http-equiv="Content-Security-Policy" content="${CSP}">`);

  const frame = document.createElement("iframe");
  frame.id = slot;
  frame.setAttribute("sandbox", "allow-scripts");   // an opaque origin: no cookies, no parent DOM
  document.getElementById("chat").append(frame);
  const bridge = new AppBridge(client, HOST, { serverTools: {}, serverResources: {} }, {
    hostContext: { theme: "light", styles: { variables: THEME }, displayMode: "inline", toolInfo: { tool },
                   platform: "web", locale: "en-US" } });
  bridge.addEventListener("sizechange", ({ height }) => { if (height) frame.style.height = `${height}px`; });
  const initialized = new Promise((resolve) => bridge.addEventListener("initialized", resolve));
  await bridge.connect(new PostMessageTransport(frame.contentWindow, frame.contentWindow));
  frame.srcdoc = html;
  await initialized;
  await bridge.sendToolInput({ arguments: args });
  const result = await resultPromise;
  await bridge.sendToolResult(result);
  return result.structuredContent;
}

window.qmtHost = { connect, modelTools, call };
