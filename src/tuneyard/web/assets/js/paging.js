// A live list over a paginated /v1 collection: it shows the newest `shown` rows, read page by page with
// the API's cursor (`after`), and "Load more" grows `shown` by one page. Every refresh re-reads from the
// top, so rows cannot slip between pages while new ones arrive; the newest refresh wins when the poll
// and "Load more" overlap. `#/…?limit=N` in the page's URL sets another page size.

import { api } from "./api.js";
import { clear, errorBox, every } from "./ui.js";

export const MAX_PAGE = 100; // the API's largest page

export function pageSizeFrom(query, fallback) {
  return Math.max(1, Math.min(MAX_PAGE, parseInt(query.limit, 10) || fallback));
}

/** Fill `body` with `render(rows)` now and every `refreshMs`; `more` is the "Load more" button. */
export async function liveList({ path, filters, pageSize, body, more, render, signal, refreshMs = 3000 }) {
  let shown = pageSize;
  let seq = 0;
  async function refresh() {
    const mine = ++seq;
    const rows = [];
    let after;
    let hasMore = false;
    while (rows.length < shown) {
      const page = await api(path, { signal, query: { ...filters, limit: Math.min(MAX_PAGE, shown - rows.length), after } });
      rows.push(...page.data);
      hasMore = page.has_more;
      if (!page.has_more || !page.data.length) break;
      after = page.data[page.data.length - 1].id;
    }
    if (mine !== seq) return;
    more.hidden = !hasMore;
    clear(body, render(rows));
  }
  more.addEventListener("click", async () => {
    shown += pageSize;
    more.disabled = true;
    try {
      await refresh();
    } catch (err) {
      if (err.name !== "AbortError") clear(body, errorBox(err));
    } finally {
      more.disabled = false;
    }
  });
  try {
    await refresh();
  } catch (err) {
    clear(body, errorBox(err));
  }
  const stop = every(refreshMs, refresh);
  signal.addEventListener("abort", stop);
}
