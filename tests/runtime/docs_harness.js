// Runs runtime/static/docs.js under node with a minimal DOM and fetch, against an OpenAPI document
// given as a file; prints what the page rendered as JSON. Used by test_server_docs_page.py.
"use strict";

const fs = require("fs");
const [script, documentPath] = process.argv.slice(2);
const spec = JSON.parse(fs.readFileSync(documentPath, "utf8"));

class Node {
  constructor(tag) {
    this.tag = tag;
    this.attributes = {};
    this.children = [];
    this.ownText = "";
    this.listeners = {};
  }
  setAttribute(name, value) { this.attributes[name] = String(value); }
  append(...children) {
    for (const child of children) this.children.push(typeof child === "string" ? { text: child } : child);
  }
  replaceChildren() { this.children = []; this.ownText = ""; }
  addEventListener(type, listener) { this.listeners[type] = listener; }
  get textContent() {
    return this.ownText + this.children.map((c) => (c instanceof Node ? c.textContent : c.text)).join("");
  }
  set textContent(value) { this.children = []; this.ownText = String(value); }
  find(tag) {
    const found = this.tag === tag ? [this] : [];
    for (const child of this.children) if (child instanceof Node) found.push(...child.find(tag));
    return found;
  }
}

const byId = { title: new Node("h1"), description: new Node("p"), operations: new Node("main"), "api-key": new Node("input") };
byId["api-key"].value = "";
const requests = [];
global.document = { createElement: (tag) => new Node(tag), getElementById: (id) => byId[id] };
global.fetch = async (url, options) => {
  requests.push({ url, method: (options && options.method) || "GET" });
  return { json: async () => spec };
};

require(require("path").resolve(script));
setTimeout(() => {
  const operations = byId.operations.find("details").map((d) => d.find("summary")[0].textContent);
  const textareas = byId.operations.find("textarea").map((t) => JSON.parse(t.textContent));
  console.log(JSON.stringify({ title: byId.title.textContent, operations, textareas, requests }));
}, 50);
