// The public credit window: search, result list, an enterprise's page with
// the sections the gateway's configuration lists (read from the answer, so
// a section added in config appears without a change here). Plain DOM, no
// framework, every request to this origin only. Chinese first, English on
// the switch (kept in the address as ?lang=en).
"use strict";

const TEXT = {
  zh: {
    skip: "跳到主要内容", brand: "企业信用信息公示", title: "查询企业信用信息",
    lead: "输入统一社会信用代码，或企业名称的开头（至少两个字）。",
    label: "统一社会信用代码或企业名称", search: "查询", hint: "例如：91370202MA… 或 “青岛”",
    results: "查询结果", none: "没有找到符合条件的企业。", searching: "正在查询…", loading: "正在读取企业信息…",
    found: (n, more) => `找到 ${n} 家企业${more ? "（还有更多，请翻页或输入更完整的名称）" : ""}。`,
    prev: "上一页", next: "下一页", page: (n) => `第 ${n} 页`,
    code: "统一社会信用代码", back: "返回查询结果",
    on: "在名单上", off: "不在名单上", nothing: "无公示记录。",
    shownUntil: (d, rule) => `公示至 ${d}（${rule}）`,
    machine: "机器可读：", json: "JSON", csv: "CSV",
    switchTo: "English", switchLabel: "Switch to English",
    "embed-title": "在您的网站嵌入查询窗口",
    "embed-text": "电子商务平台可将下面的代码放在首页，访客即可查询企业信用信息：",
    about: "本页只显示依法公示的企业信息；行政处罚等记录在公示期满后不再显示。每次查询均有审计记录。",
    yes: "是", no: "否", verified: "已实名核验", unverified: "未实名核验",
    asOf: (d) => `信息截至 ${d}`,
    error: "查询失败：", tooMany: "查询过于频繁，请稍后再试。",
  },
  en: {
    skip: "Skip to main content", brand: "Public credit information", title: "Look up an enterprise's credit information",
    lead: "Enter a unified social credit code, or the beginning of a registered name (at least two characters).",
    label: "Credit code or registered name", search: "Search", hint: "For example: 91370202MA… or “青岛”",
    results: "Results", none: "No enterprise matches.", searching: "Searching…", loading: "Reading the enterprise's information…",
    found: (n, more) => `${n} enterprise${n === 1 ? "" : "s"} found${more ? " (more on the next pages, or give more of the name)" : ""}.`,
    prev: "Previous page", next: "Next page", page: (n) => `Page ${n}`,
    code: "Credit code", back: "Back to the results",
    on: "On the list", off: "Not on the list", nothing: "No published records.",
    shownUntil: (d, rule) => `Shown until ${d} (${rule})`,
    machine: "Machine-readable: ", json: "JSON", csv: "CSV",
    switchTo: "中文", switchLabel: "切换到中文",
    "embed-title": "Embed the lookup on your site",
    "embed-text": "E-commerce platforms can put this code on their home page so that visitors can look up enterprises:",
    about: "This page shows only information the law requires to be published; penalties and list entries leave it when their publication period ends. Every lookup is audited.",
    yes: "yes", no: "no", verified: "real name verified", unverified: "real name not verified",
    asOf: (d) => `As of ${d}`,
    error: "The lookup failed: ", tooMany: "Too many lookups; please try again shortly.",
  },
};

// Headings of columns the demo and common configurations show; any other
// column is shown under its own name.
const COLUMNS = {
  credit_code: ["统一社会信用代码", "Credit code"], name: ["企业名称", "Registered name"],
  registered_capital: ["注册资本（万元）", "Registered capital (10,000 CNY)"], established_date: ["成立日期", "Established"],
  district_code: ["行政区划代码", "District code"], business_scope: ["经营范围", "Business scope"], status: ["状态", "Status"],
  licence_no: ["许可证编号", "Licence number"], licence_type: ["许可类型", "Licence type"], issuer: ["发证机关", "Issued by"],
  issued_date: ["发证日期", "Issued"], expiry_date: ["有效期至", "Valid until"],
  penalty_id: ["处罚编号", "Penalty id"], decision_no: ["决定书文号", "Decision number"], violation: ["违法行为", "Violation"],
  penalty_kind: ["处罚种类", "Kind of penalty"], amount: ["罚没金额（元）", "Amount (CNY)"], decision_date: ["决定日期", "Decided"],
  department: ["作出决定机关", "Decided by"], is_public: ["公示", "Published"], disputed: ["异议中", "Disputed"],
  entry_id: ["名单编号", "Entry id"], basis: ["列入依据", "Basis"], listing_department: ["列入部门", "Listed by"],
  listed_date: ["列入日期", "Listed"], severity: ["严重程度", "Severity"], shop_id: ["网店编号", "Shop id"],
  shop_name: ["网店名称", "Shop name"], real_name_verified: ["实名核验", "Real-name check"], commitment: ["承诺内容", "Commitment"],
  signed_date: ["承诺日期", "Signed"], shown_until: ["公示截止", "Shown until"], publication_rule: ["公示依据", "Publication rule"],
};

const VALUES = {
  penalty_kind: {
    warning: ["警告", "warning"], criticism: ["通报批评", "notice of criticism"], fine: ["罚款", "fine"],
    confiscation: ["没收违法所得、没收非法财物", "confiscation"], suspension: ["暂扣许可证件、责令停产停业", "suspension"],
    revocation: ["吊销许可证件", "revocation"],
  },
  severity: { serious: ["严重", "serious"], general: ["一般", "general"] },
};

const RULES = {
  "samr_order_45.art13_3m": ["《市场监督管理行政处罚信息公示规定》第十三条：通报批评或较低数额罚款，公示3个月", "SAMR Order 45, Art. 13: criticism or a low fine, 3 months"],
  "samr_order_45.art13_3y": ["《市场监督管理行政处罚信息公示规定》第十三条：其他行政处罚，公示3年", "SAMR Order 45, Art. 13: other penalties, 3 years"],
  "list_periods.serious": ["严重失信名单：最短6个月，最长3年", "serious entries: 6 months to 3 years"],
  "list_periods.general": ["一般失信名单：最短3个月，最长1年", "general entries: 3 months to 1 year"],
};

const HIDDEN_FIELDS = new Set(["shown_until", "publication_rule"]);
const SEARCH = "/public/v1/search";
const ENTERPRISE = "/public/v1/enterprises/";

let lang = new URLSearchParams(location.search).get("lang") === "en" ? "en" : "zh";
let last = null; // what is shown: {kind: "search", answer} or {kind: "enterprise", page}

const $ = (id) => document.getElementById(id);
const t = (key, ...args) => {
  const value = TEXT[lang][key];
  return typeof value === "function" ? value(...args) : value;
};
const pick = (pair) => (lang === "en" ? pair[1] : pair[0]);
const el = (tag, props = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else node.setAttribute(k, v);
  }
  for (const child of children) node.append(child);
  return node;
};

function columnLabel(name) {
  return COLUMNS[name] ? pick(COLUMNS[name]) : name;
}

function showValue(column, value) {
  if (value === null || value === undefined || value === "") return "—";
  if (column === "real_name_verified") return value ? `✓ ${t("verified")}` : `✗ ${t("unverified")}`;
  if (typeof value === "boolean") return value ? t("yes") : t("no");
  const known = VALUES[column] && VALUES[column][value];
  if (known) return pick(known);
  if (column === "publication_rule") return RULES[value] ? pick(RULES[value]) : value;
  return String(value);
}

function params(extra) {
  const out = new URLSearchParams(extra);
  if (lang === "en") out.set("lang", "en");
  return out.toString();
}

function status(message, isError) {
  const node = $("status");
  node.textContent = message || "";
  node.classList.toggle("error", Boolean(isError));
}

async function getJson(url) {
  const response = await fetch(url, { headers: { accept: "application/json" }, credentials: "omit" });
  let body = null;
  try { body = await response.json(); } catch (_) { body = null; }
  if (!response.ok) {
    const message = response.status === 429 ? t("tooMany") : (body && body.error && body.error.message) || String(response.status);
    const error = new Error(message);
    error.status = response.status;
    throw error;
  }
  return body;
}

function applyLanguage() {
  document.documentElement.lang = lang === "en" ? "en" : "zh-CN";
  for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
  const button = $("lang");
  button.textContent = t("switchTo");
  button.setAttribute("aria-label", t("switchLabel"));
  button.lang = lang === "en" ? "zh-CN" : "en";
  $("home").href = lang === "en" ? "/?lang=en" : "/";
  $("snippet").textContent =
    `<iframe src="${location.origin}/embed" title="${lang === "en" ? "Credit lookup" : "企业信用查询"}" width="420" height="150" style="border:0"></iframe>`;
  document.title = `${t("brand")} · ${lang === "en" ? "企业信用信息公示" : "Public credit information"}`;
  if (last && last.kind === "search") renderResults(last.answer);
  if (last && last.kind === "enterprise") renderEnterprise(last.page);
}

async function search(q, page) {
  $("enterprise").hidden = true;
  status(t("searching"));
  try {
    const answer = await getJson(`${SEARCH}?${new URLSearchParams({ q, page: String(page) })}`);
    if (answer.by === "credit_code" && answer.results.length === 1) {
      return openEnterprise(answer.results[0].credit_code, true);
    }
    last = { kind: "search", answer };
    renderResults(answer);
    $("results-title").focus();
  } catch (error) {
    $("results").hidden = true;
    status(t("error") + error.message, true);
  }
}

function renderResults(answer) {
  const list = $("result-list");
  list.replaceChildren();
  for (const row of answer.results) {
    const link = el("a", { href: `/?${params({ code: row.credit_code })}`, text: row.name || row.credit_code });
    link.addEventListener("click", (event) => {
      event.preventDefault();
      history.pushState(null, "", link.getAttribute("href"));
      openEnterprise(row.credit_code, false);
    });
    const extra = Object.entries(row)
      .filter(([k]) => k !== "name")
      .map(([k, v]) => `${columnLabel(k)}: ${showValue(k, v)}`)
      .join(" · ");
    list.append(el("li", {}, link, el("span", { class: "sub", text: extra })));
  }
  const pager = $("pager");
  pager.replaceChildren();
  pager.setAttribute("aria-label", t("page", answer.page));
  const go = (page) => {
    history.pushState(null, "", `/?${params({ q: answer.q, page: String(page) })}`);
    search(answer.q, page);
  };
  if (answer.page > 1) {
    const prev = el("button", { type: "button", text: t("prev") });
    prev.addEventListener("click", () => go(answer.page - 1));
    pager.append(prev);
  }
  if (answer.has_more) {
    const next = el("button", { type: "button", text: t("next") });
    next.addEventListener("click", () => go(answer.page + 1));
    pager.append(next);
  }
  $("results").hidden = false;
  status(answer.results.length ? t("found", answer.results.length, answer.has_more) : t("none"));
}

async function openEnterprise(code, replace) {
  if (replace) history.replaceState(null, "", `/?${params({ code })}`);
  $("results").hidden = true;
  status(t("loading"));
  try {
    const page = await getJson(ENTERPRISE + encodeURIComponent(code));
    last = { kind: "enterprise", page };
    renderEnterprise(page);
    status("");
    $("ent-title").focus();
  } catch (error) {
    $("enterprise").hidden = true;
    status(t("error") + error.message, true);
  }
}

function fieldsOf(section, record) {
  const names = section.columns || Object.keys(record);
  return names.filter((n) => !HIDDEN_FIELDS.has(n) && n in record);
}

function periodNote(record) {
  if (!record.shown_until) return null;
  return el("p", { class: "period", text: t("shownUntil", record.shown_until, showValue("publication_rule", record.publication_rule)) });
}

function recordList(section, record) {
  const dl = el("dl", { class: "record" });
  for (const name of fieldsOf(section, record)) {
    dl.append(el("dt", { text: columnLabel(name) }), el("dd", { text: showValue(name, record[name]) }));
  }
  return dl;
}

function recordTable(section, records, caption) {
  const names = fieldsOf(section, records[0]);
  const withPeriod = records.some((r) => r.shown_until);
  const table = el("table");
  table.append(el("caption", { class: "sr-only", text: caption }));
  const head = el("tr");
  for (const name of names) head.append(el("th", { scope: "col", text: columnLabel(name) }));
  if (withPeriod) head.append(el("th", { scope: "col", text: columnLabel("shown_until") }));
  table.append(el("thead", {}, head));
  const body = el("tbody");
  for (const record of records) {
    const row = el("tr");
    for (const name of names) row.append(el("td", { "data-label": columnLabel(name), text: showValue(name, record[name]) }));
    if (withPeriod) {
      const note = record.shown_until ? t("shownUntil", record.shown_until, showValue("publication_rule", record.publication_rule)) : "—";
      row.append(el("td", { "data-label": columnLabel("shown_until"), text: note }));
    }
    body.append(row);
  }
  table.append(body);
  return table;
}

function renderEnterprise(page) {
  const sections = page.sections || [];
  const first = sections.length ? page[sections[0].name] : null;
  $("ent-title").textContent = (first && first.name) || page.credit_code;
  $("ent-meta").textContent = `${t("code")}: ${page.credit_code}${page.as_of ? " · " + t("asOf", page.as_of) : ""}`;
  const container = $("sections");
  container.replaceChildren();
  for (const section of sections) {
    const title = section.title ? pick([section.title.zh, section.title.en]) : section.name;
    const id = `section-${section.name}`;
    const part = el("section", { "aria-labelledby": id, "data-section": section.name });
    part.append(el("h3", { id, text: title }));
    const value = page[section.name];
    if (section.shape === "membership") {
      const on = Boolean(page[`on_${section.name}`]);
      part.append(el("p", {}, el("span", { class: `badge ${on ? "on" : "off"}`, text: on ? t("on") : t("off") })));
    }
    if (section.shape === "record") {
      if (value) {
        part.append(recordList(section, value));
        const note = periodNote(value);
        if (note) part.append(note);
      } else {
        part.append(el("p", { class: "empty", text: t("nothing") }));
      }
    } else if (Array.isArray(value) && value.length) {
      part.append(recordTable(section, value, title));
    } else if (section.shape !== "membership") {
      part.append(el("p", { class: "empty", text: t("nothing") }));
    }
    container.append(part);
  }
  const machine = $("machine");
  machine.replaceChildren(
    t("machine"),
    el("a", { href: ENTERPRISE + encodeURIComponent(page.credit_code), text: t("json") }),
    " · ",
    el("a", { href: `${ENTERPRISE}${encodeURIComponent(page.credit_code)}?format=csv`, text: t("csv") }),
  );
  $("enterprise").hidden = false;
}

function fromAddress() {
  const query = new URLSearchParams(location.search);
  const code = query.get("code");
  const q = query.get("q");
  if (code) {
    openEnterprise(code, false);
  } else if (q) {
    $("q").value = q;
    search(q, Number(query.get("page")) || 1);
  } else {
    $("results").hidden = true;
    $("enterprise").hidden = true;
    last = null;
    status("");
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("search").addEventListener("submit", (event) => {
    event.preventDefault();
    const q = $("q").value.trim();
    if (!q) return;
    history.pushState(null, "", `/?${params({ q })}`);
    search(q, 1);
  });
  $("lang").addEventListener("click", () => {
    lang = lang === "en" ? "zh" : "en";
    const query = new URLSearchParams(location.search);
    if (lang === "en") query.set("lang", "en");
    else query.delete("lang");
    const rest = query.toString();
    history.replaceState(null, "", rest ? `/?${rest}` : "/");
    applyLanguage();
  });
  window.addEventListener("popstate", fromAddress);
  applyLanguage();
  fromAddress();
});
