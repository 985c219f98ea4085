// Hand-made SVG charts: a line chart that can be updated in place, horizontal bars and columns.
// Sized by a viewBox and scaled by CSS, so they fit a phone or a laptop; colors come from CSS variables.

import { h, num } from "./ui.js";

const NS = "http://www.w3.org/2000/svg";
const COLORS = ["var(--series-1)", "var(--series-2)", "var(--series-3)", "var(--series-4)"];

function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null) el.setAttribute(k, String(v));
  for (const c of children) if (c !== null && c !== undefined) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

/** About `count` round tick values covering [min, max]. */
export function niceTicks(min, max, count = 4) {
  if (!(max > min)) return [min];
  const raw = (max - min) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((v) => v >= raw) || raw;
  const out = [];
  for (let v = Math.ceil(min / step) * step; v <= max + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

function domain(values, pad = 0.06) {
  let lo = Math.min(...values);
  let hi = Math.max(...values);
  if (lo === hi) {
    const d = Math.abs(lo) * 0.1 || 1;
    lo -= d;
    hi += d;
  } else {
    const d = (hi - lo) * pad;
    lo -= d;
    hi += d;
  }
  return [lo, hi];
}

/**
 * A line chart of one or more series of [x, y] points.
 *   const chart = new LineChart({ key: "loss", title: "Loss", series: ["loss"], xLabel: "step" });
 *   panel.append(chart.el); chart.set([[[1, 2.3], [2, 2.1]]]);
 */
export class LineChart {
  constructor({ key, title, series = [title], xLabel = "step", format = (v) => num(v, 4), width = 360, height = 180,
                empty = "Waiting for data…" }) {
    Object.assign(this, { key, title, names: series, xLabel, format, width, height, empty });
    this.svg = s("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", preserveAspectRatio: "xMidYMid meet" });
    this.meta = h("span", { class: "meta" });
    this.legend = series.length > 1
      ? h("div", { class: "legend" }, series.map((n, i) => h("span", { style: `--swatch:${COLORS[i % COLORS.length]}` }, n)))
      : null;
    this.el = h("figure", { class: "chart", "data-chart": key },
      h("figcaption", {}, h("span", { class: "title" }, title), this.meta), this.svg, this.legend);
    this.set(series.map(() => []));
  }

  /** Replace the data: one array of [x, y] per series. */
  set(seriesPoints) {
    const data = seriesPoints.map((pts) => pts.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y)));
    const all = data.flat();
    const { width: W, height: H } = this;
    const m = { l: 50, r: 10, t: 8, b: 22 };
    this.svg.replaceChildren();
    this.el.dataset.points = String(all.length);
    const last = data[0]?.length ? data[0][data[0].length - 1][1] : null;
    this.meta.textContent = all.length
      ? `${data[0].length} point${data[0].length === 1 ? "" : "s"} · last ${this.format(last)}`
      : "no points yet";
    this.svg.setAttribute("aria-label", all.length
      ? `${this.title}: ${data[0].length} points over ${this.xLabel}, last value ${this.format(last)}`
      : `${this.title}: no data yet`);
    if (!all.length) {
      this.svg.append(s("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "no-data" }, this.empty));
      return;
    }
    const [x0, x1] = domain(all.map((p) => p[0]), 0.02);
    const [y0, y1] = domain(all.map((p) => p[1]));
    const X = (x) => m.l + ((x - x0) / (x1 - x0)) * (W - m.l - m.r);
    const Y = (y) => H - m.b - ((y - y0) / (y1 - y0)) * (H - m.t - m.b);
    for (const t of niceTicks(y0, y1, 4)) {
      this.svg.append(s("line", { x1: m.l, x2: W - m.r, y1: Y(t), y2: Y(t), class: "grid-line" }),
        s("text", { x: m.l - 6, y: Y(t) + 3, "text-anchor": "end", class: "tick" }, this.format(t)));
    }
    const xTicks = niceTicks(x0, x1, Math.min(5, Math.max(1, new Set(all.map((p) => p[0])).size)));
    for (const t of xTicks) {
      this.svg.append(s("text", { x: X(t), y: H - m.b + 14, "text-anchor": "middle", class: "tick" }, num(t, 3)));
    }
    this.svg.append(s("line", { x1: m.l, x2: W - m.r, y1: H - m.b, y2: H - m.b, class: "axis" }));
    data.forEach((pts, i) => {
      if (!pts.length) return;
      const color = COLORS[i % COLORS.length];
      const d = pts.map(([x, y], j) => `${j ? "L" : "M"}${X(x).toFixed(1)},${Y(y).toFixed(1)}`).join("");
      this.svg.append(s("path", { d, class: "line", stroke: color }));
      if (pts.length <= 150) {
        for (const [x, y] of pts) {
          this.svg.append(s("circle", { cx: X(x), cy: Y(y), r: 3, class: "pt", fill: color },
            s("title", {}, `${this.names[i]} at ${this.xLabel} ${num(x, 6)}: ${this.format(y)}`)));
        }
      }
    });
  }
}

/** Horizontal bars: items = [{label, value}], largest first. */
export function barChart({ key, title, items, format = (v) => num(v), empty = "Nothing yet" }) {
  const W = 360;
  const rowH = 26;
  const H = Math.max(1, items.length) * rowH + 8;
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, role: "img",
    "aria-label": items.length ? `${title}: ${items.map((i) => `${i.label} ${format(i.value)}`).join(", ")}` : `${title}: no data` });
  if (!items.length) {
    svg.setAttribute("viewBox", `0 0 ${W} 60`);
    svg.append(s("text", { x: W / 2, y: 34, "text-anchor": "middle", class: "no-data" }, empty));
  }
  const max = Math.max(...items.map((i) => i.value), 0) || 1;
  const labelW = 110;
  const valueW = 74;
  items.forEach((item, i) => {
    const y = 4 + i * rowH;
    const w = Math.max(item.value > 0 ? 2 : 0, ((W - labelW - valueW) * item.value) / max);
    svg.append(
      s("text", { x: labelW - 8, y: y + 15, "text-anchor": "end", class: "bar-label" }, item.label),
      s("rect", { x: labelW, y: y + 3, width: w, height: rowH - 10, rx: 3, class: "bar" }, s("title", {}, `${item.label}: ${format(item.value)}`)),
      s("text", { x: labelW + w + 6, y: y + 15, class: "bar-value" }, format(item.value)));
  });
  return h("figure", { class: "chart", "data-chart": key }, h("figcaption", {}, h("span", { class: "title" }, title)), svg);
}

/** Vertical columns over ordered labels (e.g. days): items = [{label, value}]. */
export function columnChart({ key, title, items, format = (v) => num(v), empty = "Nothing yet" }) {
  const W = 360;
  const H = 180;
  const m = { l: 46, r: 8, t: 8, b: 28 };
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, role: "img",
    "aria-label": `${title}: ${items.filter((i) => i.value).map((i) => `${i.label} ${format(i.value)}`).join(", ") || "no spend"}` });
  const max = Math.max(...items.map((i) => i.value), 0);
  if (!items.length || max <= 0) {
    svg.append(s("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "no-data" }, empty));
  } else {
    const ticks = niceTicks(0, max, 3);
    const top = Math.max(max, ticks[ticks.length - 1]);
    const Y = (v) => H - m.b - (v / top) * (H - m.t - m.b);
    for (const t of ticks) {
      svg.append(s("line", { x1: m.l, x2: W - m.r, y1: Y(t), y2: Y(t), class: "grid-line" }),
        s("text", { x: m.l - 6, y: Y(t) + 3, "text-anchor": "end", class: "tick" }, format(t)));
    }
    const slot = (W - m.l - m.r) / items.length;
    const every = Math.ceil(items.length / 6);
    items.forEach((item, i) => {
      const x = m.l + i * slot;
      const bh = H - m.b - Y(item.value);
      svg.append(s("rect", { x: x + slot * 0.15, y: Y(item.value), width: slot * 0.7, height: Math.max(0, bh), rx: 2, class: "bar" },
        s("title", {}, `${item.label}: ${format(item.value)}`)));
      if (i % every === 0) svg.append(s("text", { x: x + slot / 2, y: H - m.b + 14, "text-anchor": "middle", class: "tick" }, item.label));
    });
  }
  return h("figure", { class: "chart", "data-chart": key }, h("figcaption", {}, h("span", { class: "title" }, title)), svg);
}
