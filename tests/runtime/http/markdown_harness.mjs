// Runs runtime/http/static/console-markdown.js under node with a minimal DOM: reads a JSON list of Markdown
// texts on stdin, prints each rendered tree as JSON ({tag, text, attributes, children}). test_console_markdown.py.
import fs from "node:fs";

class Element {
  constructor(tag) {
    Object.assign(this, { tag, children: [], ownText: "", attributes: {}, dataset: {} });
  }
  append(...nodes) { this.children.push(...nodes); }
  replaceChildren(...nodes) { this.children = nodes; this.ownText = ""; }
  setAttribute(name, value) { this.attributes[name] = String(value); }
  get textContent() { return this.ownText + this.children.map((c) => c.textContent).join(""); }
  set textContent(value) { this.children = []; this.ownText = String(value); }
  tree() {
    const properties = Object.fromEntries(["href", "rel", "target"].filter((k) => k in this).map((k) => [k, this[k]]));
    return { tag: this.tag, text: this.ownText, attributes: { ...this.attributes, ...properties, ...this.dataset },
             children: this.children.map((c) => c.tree()) };
  }
}
class TextNode {
  constructor(text) { this.textContent = String(text); }
  tree() { return { tag: "#text", text: this.textContent, attributes: {}, children: [] }; }
}
globalThis.document = {
  createElement: (tag) => new Element(tag),
  createTextNode: (text) => new TextNode(text),
  createDocumentFragment: () => new Element("#fragment"),
};
const source = fs.readFileSync(process.argv[2], "utf8");
const { renderMarkdown } = await import("data:text/javascript," + encodeURIComponent(source));
const texts = JSON.parse(fs.readFileSync(0, "utf8"));
console.log(JSON.stringify(texts.map((text) => renderMarkdown(text).tree())));
