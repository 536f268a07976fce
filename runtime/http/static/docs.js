// Renders /openapi.json as a list of operations with a "try it" form. Self-contained: no CDN, no build step.
"use strict";

const METHODS = ["get", "post", "put", "patch", "delete"];

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, value);
  for (const child of children) node.append(child);
  return node;
}

function resolve(spec, schema, depth) {
  if (!schema || depth > 6) return schema;
  if (schema.$ref) {
    const target = schema.$ref.replace(/^#\//, "").split("/").reduce((at, key) => (at ? at[key] : undefined), spec);
    return resolve(spec, target, depth + 1);
  }
  return schema;
}

function example(spec, schema, depth) {
  schema = resolve(spec, schema, depth);
  if (!schema || depth > 4) return null;
  if (schema.example !== undefined) return schema.example;
  if (schema.default !== undefined) return schema.default;
  if (schema.enum) return schema.enum[0];
  if (schema.anyOf || schema.oneOf) return example(spec, (schema.anyOf || schema.oneOf)[0], depth + 1);
  if (schema.type === "object" || schema.properties) {
    const out = {};
    for (const name of schema.required || []) out[name] = example(spec, schema.properties?.[name], depth + 1);
    return out;
  }
  if (schema.type === "array") return [example(spec, schema.items, depth + 1)].filter((x) => x !== null);
  return { string: "", integer: 0, number: 0, boolean: false }[schema.type] ?? null;
}

function requestExample(spec, operation) {
  const content = operation.requestBody?.content?.["application/json"];
  if (!content) return null;
  if (content.example !== undefined) return content.example;
  return example(spec, content.schema, 0);
}

function tryIt(path, method, body) {
  const output = el("pre", {}, "");
  const input = body === null ? null : el("textarea", { spellcheck: "false" }, JSON.stringify(body, null, 2));
  const button = el("button", { type: "button" }, "Send");
  button.addEventListener("click", async () => {
    const headers = { "content-type": "application/json" };
    const key = document.getElementById("api-key").value.trim();
    if (key) headers.authorization = "Bearer " + key;
    output.textContent = "...";
    try {
      const response = await fetch(path, { method: method.toUpperCase(), headers, body: input ? input.value : undefined });
      output.textContent = `${response.status} ${response.statusText}  (request id ${response.headers.get("x-request-id")})\n\n`;
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        output.textContent += decoder.decode(value, { stream: true });
      }
    } catch (error) {
      output.textContent = String(error);
    }
  });
  return el("div", {}, ...(input ? [input] : []), button, output);
}

function operationView(spec, path, method, operation) {
  const summary = el("summary", {}, el("span", { class: `method ${method}` }, method), " ", path,
    el("span", { class: "tag" }, operation.summary || ""));
  const parts = [summary];
  if (operation.description) parts.push(el("p", {}, operation.description));
  const content = operation.requestBody?.content?.["application/json"];
  if (content?.schema) {
    parts.push(el("h4", {}, "Request body"), el("pre", {}, JSON.stringify(resolve(spec, content.schema, 0), null, 2)));
  }
  const codes = Object.entries(operation.responses || {}).map(([code, r]) => `${code}: ${r.description || ""}`);
  parts.push(el("h4", {}, "Responses"), el("pre", {}, codes.join("\n")));
  if (!path.includes("{")) parts.push(el("h4", {}, "Try it"), tryIt(path, method, requestExample(spec, operation)));
  return el("details", {}, ...parts);
}

async function main() {
  const target = document.getElementById("operations");
  let spec;
  try {
    spec = await (await fetch("/openapi.json")).json();
  } catch (error) {
    target.textContent = `Could not load /openapi.json: ${error}`;
    return;
  }
  document.getElementById("title").textContent = `${spec.info?.title || "API"} ${spec.info?.version || ""}`;
  document.getElementById("description").textContent = spec.info?.description || "";
  target.replaceChildren();
  for (const [path, item] of Object.entries(spec.paths || {})) {
    for (const method of METHODS) {
      if (item[method]) target.append(operationView(spec, path, method, item[method]));
    }
  }
}

main();
