// The console's calls to this server: the key from the tab's session storage as a Bearer header, no cookies.
const KEY = "cortex.console.key";

export class Unauthorized extends Error {}
const CROSS_SITE_HINT =
  "This server has no API keys, so it takes changes only from a page opened by its address or as localhost " +
  "(a page from another site could give itself this name). Open the console by address, or list " +
  `${location.origin} in server.cors.origins.`;

export function savedKey() {
  return sessionStorage.getItem(KEY) || "";
}

export function saveKey(key) {
  if (key) sessionStorage.setItem(KEY, key);
  else sessionStorage.removeItem(KEY);
}

function headers(extra = {}) {
  const key = savedKey();
  return key ? { ...extra, authorization: `Bearer ${key}` } : extra;
}

async function failure(response) {
  if (response.status === 401) return new Unauthorized("the API key was refused");
  let message = `${response.status} ${response.statusText}`;
  try {
    const body = await response.json();
    message = body?.error?.message || message;
    if (body?.error?.code === "cross_site_refused") message = CROSS_SITE_HINT;
  } catch {
    // not JSON: the status says enough
  }
  return new Error(message);
}

export async function getJson(path) {
  const response = await fetch(path, { headers: headers(), credentials: "omit", cache: "no-store" });
  if (!response.ok) throw await failure(response);
  return response.json();
}

export async function postJson(path, body, signal) {
  const response = await fetch(path, {
    method: "POST",
    headers: headers({ "content-type": "application/json" }),
    body: JSON.stringify(body ?? {}),
    credentials: "omit",
    signal,
  });
  if (!response.ok) throw await failure(response);
  return response;
}

// Server-sent events of a streamed completion: calls onEvent with each parsed `data:` object until [DONE].
export async function readEvents(response, onEvent) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      for (const line of event.split("\n")) {
        if (!line.startsWith("data:")) continue;
        const data = line.slice(5).trim();
        if (data === "[DONE]") return;
        onEvent(JSON.parse(data));
      }
    }
  }
}
