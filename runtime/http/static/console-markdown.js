// Markdown from a model, rendered as DOM nodes whose text is always set through textContent: no HTML the model
// writes ever reaches the page as markup. Covers what chat answers use: fenced code, headings, lists, quotes,
// paragraphs; inline code, bold, italic and http(s) links.

const FENCE = /^\s*(```|~~~)\s*([\w+-]*)\s*$/;
const HEADING = /^(#{1,6})\s+(.*)$/;
const BULLET = /^\s*[-*+]\s+(.*)$/;
const NUMBERED = /^\s*\d{1,9}[.)]\s+(.*)$/;
const QUOTE = /^\s*>\s?(.*)$/;
// Bounded repetitions: a long run of unclosed `[` or `*` must not make each render quadratic.
const INLINE = /(`[^`\n]{1,2000}`)|(\*\*[^*\n]{1,2000}\*\*)|(\*[^*\n]{1,2000}\*|_[^_\n]{1,2000}_)|(\[[^\]\n]{1,500}\]\([^)\s]{1,2000}\))/;
const MAX_QUOTE_DEPTH = 8;

function element(tag, text) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  return node;
}

function safeUrl(raw) {
  try {
    const url = new URL(raw);
    return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
  } catch {
    return null;
  }
}

function inlineNode(token) {
  if (token.startsWith("`")) return element("code", token.slice(1, -1));
  if (token.startsWith("**")) return appendInline(element("strong"), token.slice(2, -2));
  if (token.startsWith("[")) {
    const split = token.indexOf("](");
    const href = safeUrl(token.slice(split + 2, -1));
    if (!href) return document.createTextNode(token);
    const link = element("a", token.slice(1, split));
    link.href = href;
    link.rel = "noopener noreferrer nofollow";
    link.target = "_blank";
    return link;
  }
  return appendInline(element("em"), token.slice(1, -1));
}

function appendInline(parent, text) {
  let rest = text;
  while (rest) {
    const match = INLINE.exec(rest);
    if (!match) {
      parent.append(document.createTextNode(rest));
      break;
    }
    if (match.index) parent.append(document.createTextNode(rest.slice(0, match.index)));
    parent.append(inlineNode(match[0]));
    rest = rest.slice(match.index + match[0].length);
  }
  return parent;
}

function listOf(lines, start, pattern, tag) {
  const list = element(tag);
  let index = start;
  for (; index < lines.length; index++) {
    const match = pattern.exec(lines[index]);
    if (!match) break;
    list.append(appendInline(element("li"), match[1]));
  }
  return [list, index];
}

function codeBlock(lines, start) {
  const fence = FENCE.exec(lines[start]);
  const body = [];
  let index = start + 1;
  for (; index < lines.length && !lines[index].trim().startsWith(fence[1]); index++) body.push(lines[index]);
  const code = element("code", body.join("\n"));
  if (fence[2]) code.dataset.language = fence[2];
  const pre = element("pre");
  pre.append(code);
  return [pre, index + 1];
}

function block(lines, index, depth) {
  const line = lines[index];
  if (FENCE.test(line)) return codeBlock(lines, index);
  const heading = HEADING.exec(line);
  if (heading) return [appendInline(element(`h${Math.min(heading[1].length + 2, 6)}`), heading[2]), index + 1];
  if (BULLET.test(line)) return listOf(lines, index, BULLET, "ul");
  if (NUMBERED.test(line)) return listOf(lines, index, NUMBERED, "ol");
  if (QUOTE.test(line) && depth < MAX_QUOTE_DEPTH) {
    const quoted = [];
    for (; index < lines.length && QUOTE.test(lines[index]); index++) quoted.push(QUOTE.exec(lines[index])[1]);
    const quote = element("blockquote");
    quote.append(renderMarkdown(quoted.join("\n"), depth + 1));
    return [quote, index];
  }
  const paragraph = [];
  do paragraph.push(lines[index++]);
  while (index < lines.length && lines[index].trim() && !startsBlock(lines[index]));
  return [appendInline(element("p"), paragraph.join("\n")), index];
}

function startsBlock(line) {
  return [FENCE, HEADING, BULLET, NUMBERED, QUOTE].some((pattern) => pattern.test(line));
}

export function renderMarkdown(text, depth = 0) {
  const fragment = document.createDocumentFragment();
  const lines = String(text).split("\n");
  let index = 0;
  while (index < lines.length) {
    if (!lines[index].trim()) {
      index++;
      continue;
    }
    const [node, next] = block(lines, index, depth);
    fragment.append(node);
    index = next;
  }
  return fragment;
}
