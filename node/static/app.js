/* Solidarity Cities dashboard: reads the node's public JSON API (docs/api.md) and renders it.
 *
 * No framework and no build step: the node may run on a closed network, so everything the page needs is
 * in this file. Routes live in the URL fragment, so every view can be linked to and bookmarked:
 *
 *   #/                                overview: totals, charts, cities
 *   #/list/pledges?city=<log id>&...  a filtered list (pledges, offers or requests)
 *   #/event/<id>                      one entry, with its inclusion proof checked in the browser
 *   #/about                           what the numbers mean and what is checked
 *
 * All text from the API (city names, descriptions: written by other cities) is inserted as text nodes,
 * never as HTML.
 */
"use strict";

(() => {
  // ---------------------------------------------------------------- formatting

  const LOCALE = "en";
  const numberFormat = new Intl.NumberFormat(LOCALE);
  const percentFormat = new Intl.NumberFormat(LOCALE, { style: "percent", maximumFractionDigits: 0 });
  const dateFormat = new Intl.DateTimeFormat("en-GB", { day: "numeric", month: "short", year: "numeric", timeZone: "UTC" });
  const dateTimeFormat = new Intl.DateTimeFormat("en-GB", {
    day: "numeric", month: "short", year: "numeric", hour: "2-digit", minute: "2-digit", timeZone: "UTC", timeZoneName: "short",
  });

  const fmt = (n) => (n === null || n === undefined ? "–" : numberFormat.format(n));
  const fmtMs = (ms) => (ms === null || ms === undefined ? "–" : dateFormat.format(new Date(ms)));
  const fmtMsLong = (ms) => (ms === null || ms === undefined ? "–" : dateTimeFormat.format(new Date(ms)));
  const fmtDay = (day) => (day ? dateFormat.format(new Date(day + "T00:00:00Z")) : "–");
  /** "1 May – 31 Aug 2026", or with both years when they differ. */
  const fmtPeriod = (from, until) => {
    if (!from || !until) return `${fmtDay(from)} – ${fmtDay(until)}`;
    if (from.slice(0, 4) !== until.slice(0, 4)) return `${fmtDay(from)} – ${fmtDay(until)}`;
    const dayMonth = new Intl.DateTimeFormat("en-GB", { day: "numeric", month: "short", timeZone: "UTC" });
    return `${dayMonth.format(new Date(from + "T00:00:00Z"))} – ${fmtDay(until)}`;
  };
  const humanize = (s) => (s ? String(s).replace(/[-_]/g, " ") : "–");
  const capital = (s) => (s ? s.charAt(0).toUpperCase() + s.slice(1) : s);
  const short = (hex, n = 12) => (hex ? hex.slice(0, n) + "…" : "–");

  const PLEDGE_KINDS = ["relocation", "resettlement", "unaccompanied-minors", "family-reunification", "other"];
  const CATEGORIES = ["reception-places", "housing", "staff", "training", "expertise", "interpretation", "equipment", "funding", "other"];
  const STATUSES = ["open", "fulfilled", "expired", "retracted"];
  const LIST_TYPES = {
    pledges: { title: "Pledges", singular: "pledge", kindParam: "kind", kindLabel: "Kind", kinds: PLEDGE_KINDS },
    offers: { title: "Offers", singular: "offer", kindParam: "category", kindLabel: "Category", kinds: CATEGORIES },
    requests: { title: "Requests", singular: "request", kindParam: "category", kindLabel: "Category", kinds: CATEGORIES },
  };
  const PAGE_SIZE = 100;

  // ---------------------------------------------------------------- DOM helpers

  const $ = (selector) => document.querySelector(selector);

  /** An element with attributes and children; strings become text nodes (never parsed as HTML). */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key === "dataset") Object.assign(node.dataset, value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    append(node, children);
    return node;
  }

  function append(node, children) {
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  const SVG_NS = "http://www.w3.org/2000/svg";
  function svg(tag, attrs, ...children) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined) continue;
      if (key === "text") node.textContent = value;
      else node.setAttribute(key, String(value));
    }
    for (const child of children.flat(Infinity)) if (child) node.append(child);
    return node;
  }

  function setStatus(text, isError = false) {
    const status = $("#status");
    status.textContent = text || "";
    status.classList.toggle("error", Boolean(isError));
  }

  function badge(status) {
    return el("span", { class: `badge ${status}` }, humanize(status));
  }

  // ---------------------------------------------------------------- the API

  class ApiError extends Error {
    constructor(status, detail) {
      super(detail);
      this.status = status;
    }
  }

  async function api(url) {
    let response;
    try {
      response = await fetch(url, { headers: { Accept: "application/json" } });
    } catch (exc) {
      throw new ApiError(0, "the node could not be reached");
    }
    if (!response.ok) {
      let detail = response.statusText || "request failed";
      try {
        const problem = await response.json();
        if (problem && problem.detail) detail = problem.detail;
      } catch (ignored) { /* not a problem document */ }
      throw new ApiError(response.status, detail);
    }
    return response.json();
  }

  const state = {
    summary: null,
    cities: [],
    citiesById: new Map(),
    previousRoute: null,
    listToken: 0,
    loadedAt: 0,
  };
  const RELOAD_AFTER_MS = 30000;

  async function loadNetwork() {
    const [summary, cities] = await Promise.all([api("/v1/summary"), allRows("/v1/cities?limit=500")]);
    state.summary = summary;
    state.cities = cities;
    state.citiesById = new Map(cities.map((c) => [c.log_id, c]));
    state.loadedAt = Date.now();
  }

  /** Every row of a list, following next_url (bounded: the city list is small). */
  async function allRows(url, maxPages = 20) {
    const rows = [];
    for (let page = 0; url && page < maxPages; page++) {
      const answer = await api(url);
      rows.push(...answer.rows);
      url = answer.next_url;
    }
    return rows;
  }

  const cityName = (city) => (city && (city.name || city.origin)) || "Unknown city";

  // ---------------------------------------------------------------- routing

  function parseRoute() {
    const hash = location.hash.replace(/^#/, "") || "/";
    const [path, query] = hash.split("?");
    const parts = path.split("/").filter(Boolean);
    const params = new URLSearchParams(query || "");
    if (parts[0] === "list" && LIST_TYPES[parts[1]]) return { view: "list", type: parts[1], params };
    if (parts[0] === "event" && /^[0-9a-f]{64}$/.test(parts[1] || "")) return { view: "event", id: parts[1] };
    if (parts[0] === "about") return { view: "about" };
    return { view: "overview" };
  }

  function showView(name) {
    for (const view of document.querySelectorAll(".view")) view.hidden = view.id !== `view-${name}`;
  }

  function markNav(route) {
    const current = route.view === "list" ? `#/list/${route.type}` : route.view === "about" ? "#/about" : route.view === "overview" ? "#/" : null;
    for (const link of document.querySelectorAll("header nav a")) {
      if (link.getAttribute("href") === current) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
  }

  let lastView = null;
  async function route() {
    const r = parseRoute();
    const moved = lastView !== null && (lastView !== r.view || r.view === "event");
    const sameList = lastView === "list" && r.view === "list";
    markNav(r);
    document.documentElement.dataset.state = "loading";
    try {
      if (r.view === "overview") {
        // Coming back to the overview after a while: show the network as it is now.
        if (Date.now() - state.loadedAt > RELOAD_AFTER_MS) await loadNetwork();
        renderOverview();
      }
      else if (r.view === "list") await renderList(r.type, r.params, sameList);
      else if (r.view === "event") await renderEvent(r.id);
      else renderAbout();
      document.documentElement.dataset.state = "ready";
    } catch (exc) {
      showError(exc);
      document.documentElement.dataset.state = "error";
    }
    document.documentElement.dataset.view = r.view;
    // After a navigation (not a filter change), move focus to the new heading for screen-reader users.
    if (moved && !sameList) {
      const heading = document.querySelector(`#view-${r.view} h1`);
      if (heading) {
        heading.setAttribute("tabindex", "-1");
        heading.focus({ preventScroll: true });
        window.scrollTo(0, 0);
      }
    }
    lastView = r.view;
    if (r.view !== "event") state.previousRoute = location.hash || "#/";
  }

  function showError(exc) {
    const text = exc instanceof ApiError ? `The node answered: ${exc.message}` : `Something went wrong: ${exc.message}`;
    setStatus(text, true);
  }

  // ---------------------------------------------------------------- overview

  function renderOverview() {
    const s = state.summary;
    showView("overview");
    document.title = "Solidarity Cities: network dashboard";
    $("#as-of").textContent = `Statuses as of ${fmtDay(s.as_of)}.`;
    renderTotals(s);
    renderPlacesChart(s.pledges_by_city || []);
    renderCategoryChart(s.offers_vs_requests || []);
    renderCitiesTable();
  }

  function renderTotals(s) {
    const members = (s.cities.by_membership || {}).member;
    const delivered = s.pledges.places ? s.pledges.delivered / s.pledges.places : null;
    // "12 open · 3 fulfilled": the statuses that have items, in a fixed order.
    const statusNote = (group) => {
      const parts = ["open", "fulfilled", "expired"].filter((k) => (group.by_status || {})[k]).map((k) => `${fmt(group.by_status[k])} ${k}`);
      return parts.length ? parts.join(" · ") : null;
    };
    const items = [
      ["cities.total", "Cities", s.cities.total, members !== undefined ? `${fmt(members)} members` : null],
      ["pledges.places", "Places pledged", s.pledges.places, `in ${fmt(s.pledges.count)} pledges`],
      ["pledges.delivered", "Places delivered", s.pledges.delivered, delivered === null ? null : `${percentFormat.format(delivered)} of pledged`],
      ["offers.count", "Offers", s.offers.count, statusNote(s.offers)],
      ["requests.count", "Requests", s.requests.count, statusNote(s.requests)],
      ["accepts.count", "Offers and requests taken up", s.accepts.count, "accepts by other cities"],
      ["statements", "Statements", s.statements, null],
      ["invalid", "Entries left out", s.invalid, "break the rules; not counted"],
    ];
    const totals = $("#totals");
    const oldNotice = $("#equivocating-notice");
    if (oldNotice) oldNotice.remove();
    totals.replaceChildren(
      ...items.map(([key, label, value, note]) =>
        el("div", { dataset: { total: key } },
          el("dt", {}, label),
          el("dd", { dataset: { value: String(value) } }, fmt(value), note ? el("small", {}, note) : null)))
    );
    if (s.equivocating && s.equivocating.length) {
      totals.after(el("p", { class: "notice error", id: "equivocating-notice" },
        `This node holds proof that ${fmt(s.equivocating.length)} ${s.equivocating.length === 1 ? "city has" : "cities have"} `,
        "signed two conflicting versions of its log; their entries are left out of every figure."));
    }
  }

  /** The width a chart can use: its container's, re-measured when the window is resized. */
  const chartWidth = (container) => Math.max(280, Math.floor(container.clientWidth || 640));

  function chartShell(container, titleText, descText, legend, svgNode, table) {
    const id = container.id;
    // A group, not an image: the bars are links (to the filtered lists) that must stay reachable.
    svgNode.setAttribute("role", "group");
    svgNode.setAttribute("aria-labelledby", `${id}-t ${id}-d`);
    svgNode.prepend(svg("title", { id: `${id}-t`, text: titleText }), svg("desc", { id: `${id}-d`, text: descText }));
    container.replaceChildren(
      legend,
      svgNode,
      el("details", { class: "chart-data" }, el("summary", {}, "Show the numbers as a table"), el("div", { class: "table-scroll" }, table))
    );
  }

  function legendList(entries) {
    return el("ul", { class: "legend" }, entries.map(([cls, text]) => el("li", { class: cls }, text)));
  }

  function renderPlacesChart(rows) {
    const container = $("#chart-places");
    if (!rows.length) {
      container.replaceChildren(el("p", { class: "hint" }, "No city has pledged places yet."));
      return;
    }
    const width = chartWidth(container);
    const narrow = width < 560;
    const labelW = narrow ? 0 : Math.min(200, Math.round(width * 0.25));
    const valueW = narrow ? 0 : 170;
    const barH = 20;
    const rowH = narrow ? 52 : 34;
    const top = 4;
    const barX = labelW;
    const barMax = width - labelW - valueW - 8;
    const max = Math.max(...rows.map((r) => Math.max(r.pledged, r.delivered)), 1);
    const height = top + rows.length * rowH;
    const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, width, height, class: "bars" });
    rows.forEach((r, i) => {
      const y = top + i * rowH + (narrow ? 22 : 0);
      const pledgedW = Math.max(2, (r.pledged / max) * barMax);
      const deliveredW = r.delivered > 0 ? Math.max(2, (r.delivered / max) * barMax) : 0;
      const share = r.pledged ? ` (${percentFormat.format(r.delivered / r.pledged)})` : "";
      const label = `${r.city || short(r.log_id)}${r.country ? ` (${r.country})` : ""}`;
      const valueText = `${fmt(r.delivered)} of ${fmt(r.pledged)}${share}`;
      const link = svg("a", { href: `#/list/pledges?city=${r.log_id}`, "aria-label": `${label}: ${valueText} places delivered; show its pledges` });
      link.append(
        narrow
          ? svg("text", { x: 0, y: y - 6, text: `${label}: ${valueText}` })
          : svg("text", { x: labelW - 10, y: y + barH / 2, "text-anchor": "end", "dominant-baseline": "central", text: label }),
        svg("rect", { class: "pledged", x: barX, y, width: pledgedW, height: barH, rx: 2 }),
        deliveredW ? svg("rect", { class: "delivered", x: barX, y: y + 4, width: deliveredW, height: barH - 8, rx: 1 }) : null,
        narrow ? null : svg("text", { class: "value", x: barX + pledgedW + 8, y: y + barH / 2, "dominant-baseline": "central", text: valueText })
      );
      chart.append(link);
    });
    const table = el("table", { class: "data" },
      el("caption", {}, "Places pledged and delivered, by city"),
      el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "City"), el("th", { scope: "col" }, "Country"),
        el("th", { scope: "col", class: "num" }, "Pledged"), el("th", { scope: "col", class: "num" }, "Delivered"),
        el("th", { scope: "col", class: "num" }, "Share"))),
      el("tbody", {}, rows.map((r) => el("tr", {},
        el("th", { scope: "row" }, r.city || short(r.log_id)), el("td", {}, r.country || "–"),
        el("td", { class: "num" }, fmt(r.pledged)), el("td", { class: "num" }, fmt(r.delivered)),
        el("td", { class: "num" }, r.pledged ? percentFormat.format(r.delivered / r.pledged) : "–")))));
    const total = rows.reduce((a, r) => a + r.pledged, 0);
    const done = rows.reduce((a, r) => a + r.delivered, 0);
    chartShell(container, "Places pledged and delivered, by city",
      `${rows.length} cities pledged ${fmt(total)} places and report ${fmt(done)} delivered.`,
      legendList([["pledged", "Pledged places"], ["delivered", "Delivered"]]), chart, table);
  }

  function renderCategoryChart(rows) {
    const container = $("#chart-categories");
    // The API gives one row per category and unit; the chart counts entries per category.
    const byCategory = new Map();
    for (const r of rows) {
      const c = byCategory.get(r.category) || { category: r.category, offers: 0, requests: 0 };
      c.offers += r.offers;
      c.requests += r.requests;
      byCategory.set(r.category, c);
    }
    const cats = [...byCategory.values()].sort((a, b) => CATEGORIES.indexOf(a.category) - CATEGORIES.indexOf(b.category));
    if (!cats.length) {
      container.replaceChildren(el("p", { class: "hint" }, "No offers or requests yet."));
      return;
    }
    const width = chartWidth(container);
    const narrow = width < 560;
    const labelW = narrow ? 0 : Math.min(170, Math.round(width * 0.22));
    const valueW = 70;
    const barH = 14;
    const groupH = (narrow ? 20 : 0) + 2 * barH + 4 + 14;
    const barMax = width - labelW - valueW;
    const max = Math.max(...cats.map((c) => Math.max(c.offers, c.requests)), 1);
    const height = cats.length * groupH;
    const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, width, height, class: "bars" });
    cats.forEach((c, i) => {
      const y0 = i * groupH + (narrow ? 20 : 0);
      const label = capital(humanize(c.category));
      const g = svg("a", {
        href: `#/list/offers?category=${c.category}`,
        "aria-label": `${label}: ${fmt(c.offers)} offers, ${fmt(c.requests)} requests; show the offers`,
      });
      g.append(narrow
        ? svg("text", { x: 0, y: y0 - 6, text: label })
        : svg("text", { x: labelW - 10, y: y0 + barH + 2, "text-anchor": "end", "dominant-baseline": "central", text: label }));
      [["offers", c.offers, 0], ["requests", c.requests, barH + 4]].forEach(([cls, n, dy]) => {
        const w = n > 0 ? Math.max(2, (n / max) * barMax) : 0;
        if (w) g.append(svg("rect", { class: cls, x: labelW, y: y0 + dy, width: w, height: barH, rx: 1 }));
        g.append(svg("text", { class: "value", x: labelW + w + 6, y: y0 + dy + barH / 2, "dominant-baseline": "central", text: fmt(n) }));
      });
      chart.append(g);
    });
    const table = el("table", { class: "data" },
      el("caption", {}, "Offers and requests by category and unit"),
      el("thead", {}, el("tr", {}, ["Category", "Unit"].map((h) => el("th", { scope: "col" }, h)),
        ["Offers", "Quantity offered", "Requests", "Quantity requested", "Accepted (offers)", "Accepted (requests)"]
          .map((h) => el("th", { scope: "col", class: "num" }, h)))),
      el("tbody", {}, rows.map((r) => el("tr", {},
        el("th", { scope: "row" }, capital(humanize(r.category))), el("td", {}, r.unit),
        [r.offers, r.offered, r.requests, r.requested, r.accepted_offers, r.accepted_requests].map((n) => el("td", { class: "num" }, fmt(n)))))));
    const offers = cats.reduce((a, c) => a + c.offers, 0);
    const requests = cats.reduce((a, c) => a + c.requests, 0);
    chartShell(container, "Offers and requests, by category",
      `${fmt(offers)} offers and ${fmt(requests)} requests in ${cats.length} categories.`,
      legendList([["offers", "Offers"], ["requests", "Requests"]]), chart, table);
  }

  function renderCitiesTable() {
    const cities = [...state.cities].sort((a, b) => cityName(a).localeCompare(cityName(b)));
    const count = (c, type) => ((c.counts && c.counts.by_type) || {})[type] || 0;
    $("#cities-table").replaceChildren(
      el("caption", {}, `${fmt(cities.length)} logs held by this node`),
      el("thead", {}, el("tr", {},
        el("th", { scope: "col" }, "City"), el("th", { scope: "col" }, "Country"), el("th", { scope: "col" }, "Membership"),
        ["Pledges", "Offers", "Requests", "Entries"].map((h) => el("th", { scope: "col", class: "num" }, h)),
        el("th", { scope: "col" }, "Latest entry"))),
      el("tbody", {}, cities.map((c) => el("tr", {},
        el("th", { scope: "row" }, el("a", { href: `#/list/pledges?city=${c.log_id}` }, cityName(c))),
        el("td", {}, c.country || "–"),
        el("td", {}, badge(c.membership)),
        el("td", { class: "num" }, fmt(count(c, "pledge"))),
        el("td", { class: "num" }, fmt(count(c, "offer"))),
        el("td", { class: "num" }, fmt(count(c, "request"))),
        el("td", { class: "num" }, fmt(c.size)),
        el("td", {}, fmtMs(c.last_event_ms)))))
    );
  }

  // ---------------------------------------------------------------- lists

  function options(select, entries, value) {
    select.replaceChildren(...entries.map(([v, text]) => el("option", { value: v }, text)));
    select.value = entries.some(([v]) => v === value) ? value : "";
  }

  function fillFilters(type, params) {
    const spec = LIST_TYPES[type];
    const cities = [...state.cities].sort((a, b) => cityName(a).localeCompare(cityName(b)));
    options($("#f-city"), [["", "All cities"], ...cities.map((c) => [c.log_id, `${cityName(c)}${c.country ? ` (${c.country})` : ""}`])], params.get("city") || "");
    const countries = [...new Set(state.cities.map((c) => c.country).filter(Boolean))].sort();
    options($("#f-country"), [["", "All countries"], ...countries.map((c) => [c, c])], params.get("country") || "");
    const kind = $("#f-kind");
    kind.name = spec.kindParam;
    $("#f-kind-label").textContent = spec.kindLabel;
    options(kind, [["", spec.kindParam === "kind" ? "All kinds" : "All categories"], ...spec.kinds.map((k) => [k, capital(humanize(k))])], params.get(spec.kindParam) || "");
    options($("#f-status"), [["", "Any status"], ...STATUSES.map((s) => [s, capital(s)])], params.get("status") || "");
  }

  function filterParams() {
    const params = new URLSearchParams();
    for (const field of $("#filters").querySelectorAll("select")) if (field.value) params.set(field.name, field.value);
    return params;
  }

  function onFilterChange() {
    const type = parseRoute().type || "pledges";
    const query = filterParams().toString();
    location.hash = `#/list/${type}${query ? "?" + query : ""}`;
  }

  const COLUMNS = {
    pledges: [
      ["Date", (r) => fmtMs(r.time_ms), "date"],
      ["City", (r) => cityCell(r)],
      ["Kind", (r) => capital(humanize(r.kind))],
      ["Places", (r) => fmt(r.quantity), "num"],
      ["Delivered", (r) => fmt(r.delivered), "num"],
      ["Period", (r) => fmtPeriod(r.from, r.until), "period"],
      ["Status", (r) => statusCell(r)],
      ["Description", (r) => r.description || "", "desc"],
    ],
    offers: [
      ["Date", (r) => fmtMs(r.time_ms), "date"],
      ["City", (r) => cityCell(r)],
      ["Category", (r) => capital(humanize(r.kind))],
      ["Quantity", (r) => `${fmt(r.quantity)} ${r.unit}`, "num"],
      ["Taken up", (r) => (r.accepts ? `${fmt(r.accepted)} (${fmt(r.accepts)} ${r.accepts === 1 ? "accept" : "accepts"})` : "–"), "num"],
      ["Period", (r) => fmtPeriod(r.from, r.until), "period"],
      ["Status", (r) => statusCell(r)],
      ["Description", (r) => r.description || "", "desc"],
    ],
  };
  COLUMNS.requests = COLUMNS.offers.map((c) => (c[0] === "Taken up" ? ["Answered", c[1], c[2]] : c));

  function cityCell(r) {
    return [r.city || short(r.log_id), r.country ? ` (${r.country})` : ""];
  }

  function statusCell(r) {
    const parts = [badge(r.status)];
    if (r.oversubscribed) parts.push(" ", el("span", { class: "badge" }, "oversubscribed"));
    if (r.equivocating) parts.push(" ", el("span", { class: "badge invalid" }, "city equivocated"));
    return parts;
  }

  function rowNode(type, r) {
    const spec = LIST_TYPES[type];
    return el("tr", {},
      COLUMNS[type].map(([, cell, cls]) => el("td", { class: cls }, cell(r))),
      el("td", { class: "link" }, el("a", { href: `#/event/${r.id}` }, "Entry & proof",
        el("span", { class: "visually-hidden" }, ` of the ${spec.singular} of ${r.city || "a city"} from ${fmtMs(r.time_ms)}`))));
  }

  function unitTotals(type, totals) {
    if (!totals || !totals.by_unit || !totals.by_unit.length) return "";
    const parts = totals.by_unit.map((u) => type === "pledges"
      ? `${fmt(u.quantity)} places pledged, ${fmt(u.delivered)} delivered`
      : `${fmt(u.quantity)} ${u.unit}`);
    return ` Counted: ${parts.join("; ")}.`;
  }

  async function renderList(type, params, sameList) {
    const spec = LIST_TYPES[type];
    showView("list");
    document.title = `${spec.title}: Solidarity Cities`;
    $("#list-title").textContent = spec.title;
    fillFilters(type, params);
    const query = filterParams();
    query.set("limit", String(PAGE_SIZE));
    const token = ++state.listToken;
    const table = $("#list-table");
    table.setAttribute("aria-busy", "true");
    if (!sameList) table.replaceChildren();
    let answer;
    try {
      answer = await api(`/v1/${type}?${query}`);
    } finally {
      table.removeAttribute("aria-busy");
    }
    if (token !== state.listToken) return; // a newer filter change won
    const csv = new URLSearchParams(filterParams());
    csv.set("format", "csv");
    const totals = answer.totals || { items: answer.rows.length };
    $("#list-count").replaceChildren(
      `${fmt(totals.items)} ${totals.items === 1 ? spec.singular : type} match.`,
      unitTotals(type, totals), " ",
      el("a", { href: `/v1/${type}?${csv}`, download: `${type}.csv` }, "Download as CSV"));
    const tbody = el("tbody", {}, answer.rows.map((r) => rowNode(type, r)));
    table.replaceChildren(
      el("caption", { class: "visually-hidden" }, `${spec.title}, oldest first`),
      el("thead", {}, el("tr", {}, COLUMNS[type].map(([h, , cls]) => el("th", { scope: "col", class: cls === "num" ? "num" : null }, h)),
        el("th", { scope: "col" }, el("span", { class: "visually-hidden" }, "Entry")))),
      tbody);
    if (!answer.rows.length) {
      tbody.append(el("tr", {}, el("td", { colspan: COLUMNS[type].length + 1 }, `No ${type} match these filters.`)));
    }
    addMoreButton(type, tbody, answer.next_url, token);
    setStatus("");
  }

  function addMoreButton(type, tbody, nextUrl, token) {
    const old = $("#list-more-wrap");
    if (old) old.remove();
    if (!nextUrl) return;
    const button = el("button", { type: "button", id: "list-more" }, "Show more");
    button.addEventListener("click", async () => {
      button.disabled = true;
      try {
        const answer = await api(nextUrl);
        if (token !== state.listToken) return;
        append(tbody, answer.rows.map((r) => rowNode(type, r)));
        button.remove();
        addMoreButton(type, tbody, answer.next_url, token);
      } catch (exc) {
        button.disabled = false;
        showError(exc);
      }
    });
    $("#list-table").closest(".table-scroll").after(el("p", { id: "list-more-wrap" }, button));
  }

  // ---------------------------------------------------------------- one event

  function facts(pairs) {
    return el("dl", { class: "facts" }, pairs.filter(Boolean).map(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
  }

  function bodyValue(value) {
    if (value === null || value === undefined) return "–";
    if (Array.isArray(value)) return value.map(bodyValue).join(", ");
    if (typeof value === "object") return JSON.stringify(value);
    if (typeof value === "number") return fmt(value);
    if (/^\d{4}-\d{2}-\d{2}$/.test(value)) return `${fmtDay(value)} (${value})`;
    if (/^[0-9a-f]{64}$/.test(value)) return el("a", { href: `#/event/${value}`, class: "hash" }, value);
    return value;
  }

  async function renderEvent(id) {
    showView("event");
    delete document.documentElement.dataset.verified; // set again once this entry's checks are done
    const content = $("#event-content");
    content.replaceChildren(el("p", { class: "hint" }, "Loading the entry and its proof…"));
    $("#event-back").setAttribute("href", state.previousRoute || "#/");
    let ev;
    try {
      ev = await api(`/v1/events/${id}`);
    } catch (exc) {
      $("#event-title").textContent = "Entry not available";
      document.title = "Entry not available: Solidarity Cities";
      content.replaceChildren(el("p", { class: "notice error" }, exc.message));
      return;
    }
    const city = state.citiesById.get(ev.log_id);
    const where = `${ev.city || cityName(city)}${city && city.country ? ` (${city.country})` : ""}`;
    const title = `${capital(ev.type || "entry")} by ${where}`;
    $("#event-title").textContent = title;
    document.title = `${title}: Solidarity Cities`;

    const checks = el("ul", { class: "checks", id: "checks", "aria-live": "polite" },
      el("li", { class: "skip" }, el("strong", {}, "Checking in your browser…")));
    const bodySection = ev.body
      ? facts(Object.keys(ev.body).sort().map((k) => [capital(humanize(k)), bodyValue(ev.body[k])]))
      : el("p", { class: "notice" }, ev.status === "erased" ? "The body of this entry was erased by its city; the entry and its proof remain." : "No body.");

    content.replaceChildren(
      facts([
        ["Status", [badge(ev.status), ev.reason ? ` ${ev.reason}` : ""]],
        ["City", where],
        ["Written", fmtMsLong(ev.time_ms)],
        ["Position", `entry ${fmt(ev.seq)} of ${fmt(ev.proof.tree_size)} in the city's log (counting from 0)`],
      ]),
      el("h2", {}, "What it says"),
      bodySection,
      el("h2", {}, "Checked in your browser"),
      checks,
      el("p", { class: "hint" },
        "Your browser ran these checks itself, on the bytes this node sent. Together they show that this entry is in the ",
        "log whose size and root hash the city signed. Not checked here: that the key below really is the city's (compare ",
        "it with the key the city publishes), and that this node shows everyone the same checkpoint (nodes compare ",
        "checkpoints with each other for that)."),
      el("h2", {}, "The proof"),
      el("h3", {}, "Signed checkpoint"),
      el("p", { class: "hint" }, "The city's signed statement of its log's size and root hash (C2SP tlog-checkpoint)."),
      el("pre", { class: "checkpoint", id: "checkpoint" }, ev.checkpoint),
      el("h3", {}, `Inclusion proof (${fmt(ev.proof.inclusion_path.length)} hashes, leaf to root)`),
      ev.proof.inclusion_path.length
        ? el("ol", { class: "proof hash", id: "proof-hashes", start: "1" }, ev.proof.inclusion_path.map((h) => el("li", {}, h)))
        : el("p", {}, "None needed: the log holds only this entry."),
      el("h3", {}, "In the log"),
      facts([
        ["Entry id (leaf hash)", el("span", { class: "hash" }, ev.id)],
        ["Log", el("span", { class: "hash" }, ev.origin)],
        ["Log id", el("span", { class: "hash" }, ev.log_id)],
        ["City's key (as this node lists it)", el("span", { class: "hash" }, ev.verifier_key)],
        ...Object.entries(ev.entry.fields || {}).map(([k, v]) => [`Entry ${humanize(k)}`,
          [el("span", { class: "hash" }, String(v)), k === "time_ms" ? ` (${fmtMsLong(v)})` : ""]]),
      ]),
      el("p", {}, "Raw data: ", el("a", { href: `/v1/events/${ev.id}` }, "this entry as JSON"), ", ",
        el("a", { href: `/v1/logs/${ev.log_id}/checkpoint` }, "the city's latest checkpoint"), "."),
    );
    setStatus("");
    const results = await verifyEvent(ev);
    checks.replaceChildren(...results.map((r) =>
      el("li", { class: r.state, dataset: { check: r.id, state: r.state } }, el("strong", {}, r.title), r.detail)));
    document.documentElement.dataset.verified = results.every((r) => r.state === "ok") ? "all"
      : results.some((r) => r.state === "fail") ? "failed" : "partly";
  }

  // ---------------------------------------------------------------- verification

  const hexToBytes = (hex) => Uint8Array.from(hex.match(/../g) || [], (b) => parseInt(b, 16));
  const bytesToHex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  const b64ToBytes = (text) => Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
  const concat = (...parts) => {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) { out.set(p, at); at += p.length; }
    return out;
  };
  const equalBytes = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);

  /** SHA-256: WebCrypto where the page is a secure context (https or localhost), else the fallback below. */
  async function sha256(bytes) {
    if (window.isSecureContext && window.crypto && crypto.subtle) {
      return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
    }
    return sha256Fallback(bytes);
  }

  /* FIPS 180-4 SHA-256, for pages served over plain http on a closed network where WebCrypto is missing. */
  const K256 = new Uint32Array([
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01,
    0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc,
    0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147,
    0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08,
    0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
    0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
  ]);
  function sha256Fallback(data) {
    const h = new Uint32Array([0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]);
    const padded = new Uint8Array(((data.length + 9 + 63) >> 6) << 6);
    padded.set(data);
    padded[data.length] = 0x80;
    const view = new DataView(padded.buffer);
    view.setUint32(padded.length - 8, Math.floor(data.length / 0x20000000));
    view.setUint32(padded.length - 4, (data.length << 3) >>> 0);
    const w = new Uint32Array(64);
    const rotr = (x, n) => (x >>> n) | (x << (32 - n));
    for (let off = 0; off < padded.length; off += 64) {
      for (let i = 0; i < 16; i++) w[i] = view.getUint32(off + 4 * i);
      for (let i = 16; i < 64; i++) {
        const s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >>> 3);
        const s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >>> 10);
        w[i] = (w[i - 16] + s0 + w[i - 7] + s1) >>> 0;
      }
      let [a, b, c, d, e, f, g, hh] = h;
      for (let i = 0; i < 64; i++) {
        const t1 = (hh + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + K256[i] + w[i]) >>> 0;
        const t2 = ((rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c))) >>> 0;
        hh = g; g = f; f = e; e = (d + t1) >>> 0; d = c; c = b; b = a; a = (t1 + t2) >>> 0;
      }
      h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += hh;
    }
    const out = new Uint8Array(32);
    const outView = new DataView(out.buffer);
    h.forEach((x, i) => outView.setUint32(4 * i, x));
    return out;
  }

  /** RFC 9162 2.1.3.2: does ``path`` lead from ``leaf`` (at ``index`` of ``size``) to ``root``? */
  async function checkInclusion(leaf, index, size, path, root) {
    let fn = BigInt(index);
    let sn = BigInt(size) - 1n;
    if (fn > sn) return false;
    let r = leaf;
    for (const p of path) {
      if (sn === 0n) return false;
      if ((fn & 1n) === 1n || fn === sn) {
        // RFC 9162 2.1.1: interior node = SHA-256(0x01 || left || right)
        r = await sha256(concat([1], p, r));
        if ((fn & 1n) === 0n) {
          while ((fn & 1n) === 0n && fn !== 0n) { fn >>= 1n; sn >>= 1n; }
        }
      } else {
        r = await sha256(concat([1], r, p));
      }
      fn >>= 1n;
      sn >>= 1n;
    }
    return sn === 0n && equalBytes(r, root);
  }

  /** A C2SP signed note split into its text (what is signed) and signature lines; a checkpoint's lines. */
  function parseCheckpoint(text) {
    const cut = text.lastIndexOf("\n\n");
    if (cut < 0) throw new Error("the checkpoint has no signature lines");
    const noteText = text.slice(0, cut + 1);
    const lines = noteText.split("\n");
    if (lines.length < 4 || !/^(0|[1-9][0-9]{0,18})$/.test(lines[1])) throw new Error("the checkpoint's size line is malformed");
    const root = b64ToBytes(lines[2]);
    if (root.length !== 32) throw new Error("the checkpoint's root hash is not 32 bytes");
    const signatures = text.slice(cut + 2).split("\n").filter(Boolean).map((line) => {
      const m = /^\u2014 (\S+) ([A-Za-z0-9+/=]+)$/.exec(line);
      if (!m) throw new Error("a signature line is malformed");
      const raw = b64ToBytes(m[2]);
      return { name: m[1], keyId: raw.slice(0, 4), signature: raw.slice(4) };
    });
    return { noteText, origin: lines[0], size: lines[1], root, signatures };
  }

  /** A C2SP verifier key "<name>+<key id hex>+<base64(0x01 || public key)>". */
  async function parseVerifierKey(text) {
    const m = /^([^+\s]+)\+([0-9a-f]{8})\+([A-Za-z0-9+/=]+)$/.exec(text || "");
    if (!m) throw new Error("the city's key is malformed");
    const material = b64ToBytes(m[3]);
    if (material.length !== 33 || material[0] !== 1) throw new Error("the city's key is not an Ed25519 key");
    // C2SP signed-note: key id = SHA-256(key name || 0x0A || 0x01 || public key)[:4]
    const keyId = (await sha256(concat(new TextEncoder().encode(m[1] + "\n"), material))).slice(0, 4);
    if (bytesToHex(keyId) !== m[2]) throw new Error("the city's key id does not match its key");
    return { name: m[1], keyId, publicKey: material.slice(1) };
  }

  async function ed25519Verify(publicKey, signature, message) {
    if (!(window.isSecureContext && window.crypto && crypto.subtle)) return null;
    let key;
    try {
      key = await crypto.subtle.importKey("raw", publicKey, { name: "Ed25519" }, false, ["verify"]);
    } catch (exc) {
      return null; // this browser's WebCrypto has no Ed25519
    }
    return crypto.subtle.verify({ name: "Ed25519" }, key, signature, message);
  }

  /** The salted body from the log's body bundle (same framing as a tlog-tiles entry bundle). */
  async function fetchSaltedBody(ev) {
    const index = Math.floor(ev.seq / 256);
    const width = Math.min(256, ev.proof.tree_size - index * 256);
    const digits = String(index).padStart(Math.ceil(String(index).length / 3) * 3, "0");
    const groups = digits.match(/.../g);
    const n = groups.map((g, i) => (i < groups.length - 1 ? "x" + g : g)).join("/");
    const response = await fetch(`/v1/logs/${ev.log_id}/bodies/${n}${width < 256 ? `.p/${width}` : ""}`);
    if (!response.ok) throw new Error(`the node answered ${response.status} for the body bundle`);
    const data = new Uint8Array(await response.arrayBuffer());
    let at = 0;
    for (let i = 0; at + 2 <= data.length; i++) {
      const len = (data[at] << 8) | data[at + 1];
      if (i === ev.seq % 256) return data.slice(at + 2, at + 2 + len);
      at += 2 + len;
    }
    throw new Error("the body bundle is shorter than expected");
  }

  /* Just enough MessagePack to read a body: nil, booleans, integers, strings, binary, arrays, maps. */
  function unpack(bytes) {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const utf8 = new TextDecoder("utf-8", { fatal: true });
    let at = 0;
    const take = (n) => { if (at + n > bytes.length) throw new Error("truncated"); const s = bytes.subarray(at, at + n); at += n; return s; };
    const u = (n) => { const s = take(n); return s.reduce((v, b) => v * 256 + b, 0); };
    const big = (signed) => { const v = signed ? view.getBigInt64(at) : view.getBigUint64(at); take(8); return Number.isSafeInteger(Number(v)) ? Number(v) : v.toString(); };
    const str = (n) => utf8.decode(take(n));
    const arr = (n) => Array.from({ length: n }, () => value());
    const map = (n) => { const o = {}; for (let i = 0; i < n; i++) { const k = value(); o[k] = value(); } return o; };
    function value() {
      const t = take(1)[0];
      if (t <= 0x7f) return t;
      if (t >= 0xe0) return t - 0x100;
      if ((t & 0xf0) === 0x80) return map(t & 0x0f);
      if ((t & 0xf0) === 0x90) return arr(t & 0x0f);
      if ((t & 0xe0) === 0xa0) return str(t & 0x1f);
      switch (t) {
        case 0xc0: return null;
        case 0xc2: return false;
        case 0xc3: return true;
        case 0xc4: return bytesToHex(take(u(1)));
        case 0xc5: return bytesToHex(take(u(2)));
        case 0xc6: return bytesToHex(take(u(4)));
        case 0xcc: return u(1);
        case 0xcd: return u(2);
        case 0xce: return u(4);
        case 0xcf: return big(false);
        case 0xd0: { const v = view.getInt8(at); take(1); return v; }
        case 0xd1: { const v = view.getInt16(at); take(2); return v; }
        case 0xd2: { const v = view.getInt32(at); take(4); return v; }
        case 0xd3: return big(true);
        case 0xd9: return str(u(1));
        case 0xda: return str(u(2));
        case 0xdb: return str(u(4));
        case 0xdc: return arr(u(2));
        case 0xdd: return arr(u(4));
        case 0xde: return map(u(2));
        case 0xdf: return map(u(4));
        default: throw new Error(`unsupported MessagePack type 0x${t.toString(16)}`);
      }
    }
    const result = value();
    if (at !== bytes.length) throw new Error("trailing bytes");
    return result;
  }

  const canonicalJSON = (v) => (Array.isArray(v) ? `[${v.map(canonicalJSON).join(",")}]`
    : v && typeof v === "object" ? `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${canonicalJSON(v[k])}`).join(",")}}`
      : JSON.stringify(v));

  /** Every check the browser can make with what the event page holds; each ok, fail or skip. */
  async function verifyEvent(ev) {
    const results = [];
    const ok = (id, title, detail) => results.push({ id, state: "ok", title, detail });
    const fail = (id, title, detail) => results.push({ id, state: "fail", title, detail });
    const skip = (id, title, detail) => results.push({ id, state: "skip", title, detail });
    let entryBytes;
    let leaf;
    try {
      entryBytes = b64ToBytes(ev.entry.base64);
      // RFC 9162 2.1.1: leaf hash = SHA-256(0x00 || entry bytes); it is the entry's id.
      leaf = await sha256(concat([0], entryBytes));
      if (bytesToHex(leaf) === ev.id) ok("leaf", "Entry hash matches", ` SHA-256(0x00 ‖ entry bytes) is the entry's id ${short(ev.id, 16)}.`);
      else fail("leaf", "Entry hash does not match", ` The entry's bytes hash to ${short(bytesToHex(leaf), 16)}, not to its id.`);
    } catch (exc) {
      fail("leaf", "Entry bytes unreadable", ` ${exc.message}.`);
    }

    let cp = null;
    try {
      cp = parseCheckpoint(ev.checkpoint);
      if (cp.origin !== ev.origin) throw new Error(`it names the log ${cp.origin}, not ${ev.origin}`);
      if (cp.size !== String(ev.proof.tree_size)) throw new Error(`it is for ${cp.size} entries, the proof for ${ev.proof.tree_size}`);
    } catch (exc) {
      fail("checkpoint", "Checkpoint unusable", ` ${exc.message}.`);
      cp = null;
    }

    if (cp && leaf) {
      const path = ev.proof.inclusion_path.map(hexToBytes);
      const included = await checkInclusion(leaf, ev.proof.leaf_index, ev.proof.tree_size, path, cp.root);
      if (included && ev.proof.leaf_index === ev.seq) {
        ok("inclusion", "Inclusion proof verified",
          ` The ${fmt(path.length)} proof hashes lead from this entry (number ${fmt(ev.seq)}) to the root hash in the city's signed checkpoint of ${fmt(ev.proof.tree_size)} entries (RFC 9162, SHA-256).`);
      } else {
        fail("inclusion", "Inclusion proof failed", " The proof hashes do not lead from this entry to the checkpoint's root hash.");
      }
    } else {
      fail("inclusion", "Inclusion proof not checked", " The entry hash or the checkpoint is unusable.");
    }

    if (cp) {
      try {
        const key = await parseVerifierKey(ev.verifier_key);
        if (key.name !== cp.origin) throw new Error(`the key is for ${key.name}, the checkpoint for ${cp.origin}`);
        const line = cp.signatures.find((s) => s.name === key.name && equalBytes(s.keyId, key.keyId));
        if (!line) throw new Error("the checkpoint carries no signature by the city's key");
        const valid = await ed25519Verify(key.publicKey, line.signature, new TextEncoder().encode(cp.noteText));
        if (valid === null) {
          skip("signature", "Signature not checked in this browser",
            " This browser offers no Ed25519 verification (WebCrypto needs a secure context, https or localhost, and a current browser). The proof above is checked against the checkpoint as this node served it.");
        } else if (valid) {
          ok("signature", "Checkpoint signature verified",
            ` Ed25519 signature by the key this node lists for ${ev.city || ev.origin} (key id ${bytesToHex(key.keyId)}). Compare that key with the one the city publishes.`);
        } else {
          fail("signature", "Checkpoint signature invalid", " The checkpoint's signature does not verify with the city's key.");
        }
      } catch (exc) {
        fail("signature", "Checkpoint signature not verified", ` ${exc.message}.`);
      }
    }

    if (!ev.body) {
      skip("body", "Body not checked", ev.status === "erased" ? " The body was erased; only its hash remains in the entry." : " There is no body to check.");
    } else if (entryBytes) {
      try {
        const fields = unpack(entryBytes);
        const salted = await fetchSaltedBody(ev);
        const hash = bytesToHex(await sha256(salted));
        if (hash !== fields.body_hash || salted.length !== fields.body_size) throw new Error("the body's bytes do not match the hash in the entry");
        const decoded = unpack(salted.subarray(16)); // 16-byte salt, then the body
        if (canonicalJSON(decoded) !== canonicalJSON(ev.body)) throw new Error("the body shown differs from the one in the log");
        ok("body", "Body matches the entry", " The salted body's SHA-256 is the one the entry records, and it says what is shown above.");
      } catch (exc) {
        fail("body", "Body not verified", ` ${exc.message}.`);
      }
    }
    return results;
  }

  // ---------------------------------------------------------------- about

  function renderAbout() {
    showView("about");
    document.title = "About the data: Solidarity Cities";
  }

  // ---------------------------------------------------------------- start

  async function start() {
    const form = $("#filters");
    form.addEventListener("change", onFilterChange);
    form.addEventListener("submit", (e) => { e.preventDefault(); onFilterChange(); });
    form.addEventListener("reset", (e) => {
      e.preventDefault();
      location.hash = `#/list/${parseRoute().type || "pledges"}`;
    });
    window.addEventListener("hashchange", route);
    let resizeTimer = null;
    window.addEventListener("resize", () => {
      clearTimeout(resizeTimer);
      resizeTimer = setTimeout(() => { if (parseRoute().view === "overview" && state.summary) renderOverview(); }, 150);
    });
    try {
      await loadNetwork();
    } catch (exc) {
      showError(exc);
      document.documentElement.dataset.state = "error";
      return;
    }
    setStatus("");
    await route();
  }

  start();
})();
