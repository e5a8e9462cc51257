// Runs command lines through the `terminal` tool with the official MCP
// TypeScript SDK, each twice: as given (a plain one is exec'd without
// bash) and with a `;` (bash runs it). Prints one JSON line per pair.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const url = process.env.CHASER_URL, key = process.env.CHASER_KEY;
const transport = new StreamableHTTPClientTransport(new URL(url + "/v1/mcp"), {
  requestInit: { headers: { Authorization: "Bearer " + key } },
});
const client = new Client({ name: "chaser-plain-test", version: "1" });
await client.connect(transport);
const call = async (args) => {
  const r = await client.callTool({ name: "terminal", arguments: args });
  return r.structuredContent;
};
const sid = (await call({ command: "true" })).session_id;
for (const line of JSON.parse(process.env.LINES)) {
  const plain = await call({ command: line, session_id: sid, cwd: "/tmp" });
  const bash = await call({ command: line + ";", session_id: sid, cwd: "/tmp" });
  console.log(JSON.stringify({ line, plain, bash }));
}
await client.close();
