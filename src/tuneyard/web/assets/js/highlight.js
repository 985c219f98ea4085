// A small Python highlighter for reward sources: keywords, strings, numbers, comments, decorators
// and function names, with line numbers. It builds DOM nodes (never innerHTML), so source text is inert.

import { h } from "./ui.js";

const KEYWORDS = new Set(("False None True and as assert async await break class continue def del elif else except " +
  "finally for from global if import in is lambda nonlocal not or pass raise return try while with yield match case").split(" "));
const TOKEN = new RegExp([
  /(?<com>#[^\n]*)/.source,
  /(?<str>[rbfuRBFU]{0,2}(?:"""[\s\S]*?(?:"""|$)|'''[\s\S]*?(?:'''|$)|"(?:[^"\\\n]|\\.)*"?|'(?:[^'\\\n]|\\.)*'?))/.source,
  /(?<dec>@[\w.]+)/.source,
  /(?<num>\b(?:0[xob][\da-f_]+|\d[\d_]*(?:\.\d*)?(?:e[+-]?\d+)?)\b)/.source,
  /(?<word>\b[A-Za-z_]\w*\b)/.source,
].join("|"), "gi");

function tokens(source) {
  const out = [];
  let last = 0;
  let prevWord = "";
  for (const m of source.matchAll(TOKEN)) {
    if (m.index > last) out.push([null, source.slice(last, m.index)]);
    const g = m.groups;
    let cls = null;
    if (g.com) cls = "tok-com";
    else if (g.str) cls = "tok-str";
    else if (g.dec) cls = "tok-dec";
    else if (g.num) cls = "tok-num";
    else if (g.word) {
      if (KEYWORDS.has(g.word)) cls = "tok-kw";
      else if (prevWord === "def" || prevWord === "class") cls = "tok-fn";
      prevWord = g.word;
    }
    out.push([cls, m[0]]);
    last = m.index + m[0].length;
  }
  if (last < source.length) out.push([null, source.slice(last)]);
  return out;
}

/** A <pre class="code"> of highlighted Python with line numbers. */
export function highlightPython(source, label = "Source") {
  const code = h("code", { class: "language-python" });
  let line = 1;
  const lineNo = () => h("span", { class: "ln", "aria-hidden": "true" }, String(line));
  code.append(lineNo());
  for (const [cls, text] of tokens(source.replace(/\n$/, ""))) {
    const parts = text.split("\n");
    parts.forEach((part, i) => {
      if (i > 0) {
        code.append("\n");
        line += 1;
        code.append(lineNo());
      }
      if (part) code.append(cls ? h("span", { class: cls }, part) : part);
    });
  }
  return h("pre", { class: "code", tabindex: "0", "aria-label": label }, code);
}
