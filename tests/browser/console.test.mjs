// Browser test of the privacy-officer console (`/console`).
//
// Starts `creditgate demo --serve` (binary from CREDITGATE_BIN) in a fresh
// temporary directory, makes requests as the data user `samr` (allowed
// look-ups of the featured company and refused ones), then drives the console
// in headless Debian Chromium through playwright-core with the privacy
// officer's client certificate: Chinese first and the English switch (kept
// across a reload), times in the deployment's time zone with UTC on hover,
// purposes and organisations by name, chain status, search by caller, search
// for refusals, the officer's own reads, the subject access report with its
// summary, pages, CSV export and printable page, the activity chart, API
// errors shown beside the field that caused them, the linkability page (a
// table per principal, warnings below min_k on the old masks, both
// languages), and screenshots (<tmp>/console.png, console-linkage.png).
// Negative controls: a data user's certificate gets the HTML refusal page
// instead of the console, and no certificate gets no page
// at all.
//
// Run: CREDITGATE_BIN=target/debug/creditgate node --test tests/browser/
// (scripts/browser-test.sh installs what is missing and does exactly that).
// Set CREDITGATE_KEEP_DIR=1 to keep the demo directory after a passing run.

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { X509Certificate } from "node:crypto";
import fs from "node:fs";
import fsp from "node:fs/promises";
import https from "node:https";
import os from "node:os";
import path from "node:path";
import tls from "node:tls";
import { chromium } from "playwright-core";

const CHROMIUM = process.env.CHROMIUM_BIN || "/usr/bin/chromium";
const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
];
/** The demo policy with the masks of before issue 14 (the linkage page's warnings). */
const OLD_MASKS_POLICY = new URL("../fixtures/demo-policy-old-masks.toml", import.meta.url);
/** Upper bound for the demo to generate its data and write endpoints.json. */
const DEMO_START_TIMEOUT_MS = 180_000;
/** Upper bound for one HTTP request made by the test itself. */
const REQUEST_TIMEOUT_MS = 30_000;
/** Upper bound for the demo to exit after SIGTERM before it is killed. */
const DEMO_STOP_TIMEOUT_MS = 15_000;
/** Subject report entries per console page (the console's REPORT_PAGE). */
const REPORT_PAGE = 25;
/** Extra look-ups of the featured company, so its report has several pages. */
const EXTRA_LOOKUPS = 28;

/** `utc` (RFC 3339) as day and clock time in Asia/Shanghai (UTC+8, no DST). */
function shanghai(utc) {
  const local = new Date(Date.parse(utc) + 8 * 3600_000).toISOString();
  return { day: local.slice(0, 10), clock: local.slice(11, 19) };
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// ---------------------------------------------------------------- the demo

/** A running `creditgate demo --serve` and what it wrote. */
class Demo {
  static async start(bin, dir) {
    const log = fs.openSync(path.join(dir, "demo.log"), "w");
    const child = spawn(bin, ["demo", "--serve", "--dir", dir], {
      stdio: ["ignore", log, log],
      env: { ...process.env, NO_COLOR: "1" },
    });
    fs.closeSync(log);
    const demo = new Demo(child, dir);
    demo.exited = new Promise((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));
    child.once("error", (e) => {
      demo.spawnError = e;
    });
    try {
      await demo.waitReady();
    } catch (e) {
      await demo.stop();
      throw e;
    }
    return demo;
  }

  /** Waits for endpoints.json, then reads it and the data manifest. */
  async waitReady() {
    const { child, dir } = this;
    const demo = this;
    const deadline = Date.now() + DEMO_START_TIMEOUT_MS;
    const file = path.join(dir, "endpoints.json");
    for (;;) {
      if (demo.spawnError) throw new Error(`cannot run ${child.spawnfile}: ${demo.spawnError.message}`);
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new Error(`creditgate demo exited early (${child.exitCode ?? child.signalCode}); log:\n${demo.logTail()}`);
      }
      try {
        demo.endpoints = JSON.parse(await fsp.readFile(file, "utf8"));
        break;
      } catch {
        // not written yet, or written halfway: try again
      }
      if (Date.now() > deadline) {
        throw new Error(`no ${file} after ${DEMO_START_TIMEOUT_MS} ms; log:\n${demo.logTail()}`);
      }
      await sleep(250);
    }
    demo.manifest = JSON.parse(await fsp.readFile(path.join(dir, "data", "manifest.json"), "utf8"));
    const url = new URL(demo.endpoints.http);
    demo.port = Number(url.port);
    demo.host = url.hostname;
    demo.serverName = demo.endpoints.server_name || "localhost";
    demo.origin = `https://${demo.serverName}:${demo.port}`;
    demo.caPem = await fsp.readFile(demo.endpoints.ca_file);
  }

  constructor(child, dir) {
    this.child = child;
    this.dir = dir;
  }

  caller(name) {
    const c = this.endpoints.callers.find((c) => c.name === name);
    assert.ok(c, `endpoints.json has no caller ${name}`);
    return c;
  }

  logTail() {
    try {
      return fs.readFileSync(path.join(this.dir, "demo.log"), "utf8").split("\n").slice(-40).join("\n");
    } catch {
      return "(no log)";
    }
  }

  /** One HTTPS request as `caller` (a name from endpoints.json). */
  request(caller, method, urlPath, { purpose, json, accept } = {}) {
    const c = this.caller(caller);
    const headers = { accept: accept ?? "application/json" };
    if (purpose !== undefined) headers["x-creditgate-purpose"] = purpose;
    const body = json === undefined ? undefined : Buffer.from(JSON.stringify(json));
    if (body) {
      headers["content-type"] = "application/json";
      headers["content-length"] = String(body.length);
    }
    return new Promise((resolve, reject) => {
      const req = https.request(
        {
          host: this.host,
          port: this.port,
          servername: this.serverName,
          method,
          path: urlPath,
          headers,
          ca: this.caPem,
          cert: fs.readFileSync(c.cert),
          key: fs.readFileSync(c.key),
          timeout: REQUEST_TIMEOUT_MS,
        },
        (res) => {
          const chunks = [];
          res.on("data", (d) => chunks.push(d));
          res.on("end", () => {
            const text = Buffer.concat(chunks).toString("utf8");
            let parsed = null;
            try {
              parsed = JSON.parse(text);
            } catch {
              parsed = null;
            }
            resolve({ status: res.statusCode, text, json: parsed });
          });
          res.on("error", reject);
        },
      );
      req.on("timeout", () => req.destroy(new Error(`${method} ${urlPath}: no answer in ${REQUEST_TIMEOUT_MS} ms`)));
      req.on("error", reject);
      if (body) req.write(body);
      req.end();
    });
  }

  /** SIGTERM, then SIGKILL if it does not exit in time. */
  async stop() {
    if (this.spawnError || this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill("SIGTERM");
    const timer = sleep(DEMO_STOP_TIMEOUT_MS).then(() => "timeout");
    if ((await Promise.race([this.exited, timer])) === "timeout") {
      this.child.kill("SIGKILL");
      await this.exited;
    }
  }
}

// ----------------------------------------------------- trusting the demo CA
//
// playwright-core sends client certificates through a local TLS proxy that
// connects to the gateway from this Node process and, unless
// `ignoreHTTPSErrors` is set, verifies the gateway's certificate against
// Node's default roots. Rather than switching verification off, the secure
// contexts Playwright builds for *our* client certificates get the demo CA as
// their only trust root, so the gateway's certificate (for `localhost`) is
// really checked.
function trustCaForClientCertificates(caPem, certPems) {
  const original = tls.createSecureContext;
  const ours = certPems.map((p) => p.toString("utf8").trim());
  tls.createSecureContext = function (options = {}) {
    const cert = options.cert === undefined ? [] : [].concat(options.cert).map((c) => c.toString("utf8").trim());
    if (options.ca === undefined && cert.some((c) => ours.includes(c))) {
      options = { ...options, ca: caPem };
    }
    return original.call(this, options);
  };
  return () => {
    tls.createSecureContext = original;
  };
}

/** The oldest audit segment file (`audit-*.jsonl`) under `dir`. */
async function oldestSegment(dir) {
  const found = [];
  for (const entry of await fsp.readdir(dir, { recursive: true })) {
    if (/^audit-.*\.jsonl$/.test(path.basename(entry))) found.push(path.join(dir, entry));
  }
  assert.ok(found.length > 0, `no audit-*.jsonl under ${dir}`);
  return found.sort((a, b) => path.basename(a).localeCompare(path.basename(b)))[0];
}

// ------------------------------------------------------------------ the test

describe("privacy-officer console", { timeout: 600_000 }, () => {
  let tmp;
  let demo;
  let browser;
  let officer; // the privacy officer's browser context
  let page;
  let untrust = () => {};
  let ready = false; // before() finished
  let failed = false; // a step failed
  const pageErrors = [];
  let code; // the featured company's credit code
  let samrOrganization; // samr's organisation as the gateway logs it
  const made = { samr: 0, samrRefused: 0 };
  const XSS_PURPOSE = `<img src=x onerror="window.__xss=1">`;

  before(async () => {
    const bin = process.env.CREDITGATE_BIN;
    assert.ok(bin, "set CREDITGATE_BIN to the creditgate binary");
    assert.ok(fs.existsSync(bin), `CREDITGATE_BIN=${bin} does not exist; build it with cargo build -p creditgate-gateway --bin creditgate`);
    assert.ok(fs.existsSync(CHROMIUM), `${CHROMIUM} not found; install Debian's chromium (scripts/browser-test.sh does)`);
    tmp = await fsp.mkdtemp(path.join(os.tmpdir(), "creditgate-console-"));
    demo = await Demo.start(bin, tmp);
    // Never leave the demo behind, even when the runner is interrupted.
    process.once("exit", () => demo?.child.kill("SIGKILL"));
    for (const signal of ["SIGINT", "SIGTERM"]) {
      process.once(signal, () => {
        demo?.child.kill("SIGTERM");
        process.exit(130);
      });
    }
    code = demo.manifest.featured.enterprise_credit_code;
    assert.match(code, /^[0-9A-Z]{18}$/);

    // Traffic as samr: many look-ups of the featured company, so its report
    // runs over several pages ...
    for (let i = 0; i < EXTRA_LOOKUPS; i++) {
      const sql = `SELECT name FROM market.enterprises WHERE credit_code = '${code}'`;
      const r = await demo.request("samr", "POST", "/v1/query", { purpose: "supervision", json: { sql } });
      assert.equal(r.status, 200, r.text);
      made.samr += 1;
    }
    // ... two more, the newest ...
    for (const sql of [
      `SELECT name, status FROM market.enterprises WHERE credit_code = '${code}'`,
      `SELECT licence_no, licence_type FROM market.licences WHERE credit_code = '${code}'`,
    ]) {
      const r = await demo.request("samr", "POST", "/v1/query", { purpose: "supervision", json: { sql } });
      assert.equal(r.status, 200, `samr's query should be allowed: ${r.text}`);
      made.samr += 1;
    }
    // ... a purpose samr may not use, and one that is markup (must stay text) ...
    for (const purpose of ["marketing", XSS_PURPOSE]) {
      const r = await demo.request("samr", "POST", "/v1/query", {
        purpose,
        json: { sql: "SELECT name FROM market.enterprises LIMIT 1" },
      });
      assert.equal(r.status, 403, r.text);
      assert.equal(r.json?.error?.code, "CG-POL-001", r.text);
      made.samr += 1;
      made.samrRefused += 1;
    }
    // ... and an organisation the gateway does not know (refused, CG-AUTH-002).
    let stranger;
    try {
      stranger = (await demo.request("stranger", "GET", "/v1/catalog")).status;
    } catch (e) {
      stranger = e.code || e.message;
    }
    assert.ok(typeof stranger !== "number" || stranger >= 400, `stranger got ${stranger}`);

    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true });
    const officerCaller = demo.caller("privacy_officer");
    const samrCaller = demo.caller("samr");
    untrust = trustCaForClientCertificates(demo.caPem, [
      await fsp.readFile(officerCaller.cert),
      await fsp.readFile(samrCaller.cert),
    ]);
    officer = await browser.newContext({
      clientCertificates: [{ origin: demo.origin, certPath: officerCaller.cert, keyPath: officerCaller.key }],
      viewport: { width: 1440, height: 1000 },
      deviceScaleFactor: 1,
      timezoneId: "UTC",
    });
    page = await officer.newPage();
    page.setDefaultTimeout(30_000);
    page.on("pageerror", (e) => pageErrors.push(e.message));
    ready = true;
  });

  after(async () => {
    await officer?.close().catch(() => {});
    await browser?.close().catch(() => {});
    untrust();
    await demo?.stop();
    if (!tmp) return;
    const passed = ready && !failed;
    if (passed && !process.env.CREDITGATE_KEEP_DIR) {
      // keep only the screenshot
      for (const entry of await fsp.readdir(tmp)) {
        if (!entry.endsWith(".png")) await fsp.rm(path.join(tmp, entry), { recursive: true, force: true });
      }
      console.log(`screenshots: ${path.join(tmp, "console.png")}, ${path.join(tmp, "console-tampered.png")}, ${path.join(tmp, "console-linkage.png")}`);
    } else {
      console.log(`demo directory kept: ${tmp} (log: ${path.join(tmp, "demo.log")})`);
      if (!passed && demo) console.log(demo.logTail());
    }
  });

  /** A test step; a failure is remembered so the demo directory is kept. */
  function step(name, fn) {
    it(name, async () => {
      try {
        await fn();
        assert.deepEqual(pageErrors, [], "no script error in the console page");
      } catch (e) {
        failed = true;
        if (pageErrors.length) console.log(`script errors in the page: ${pageErrors.join("\n")}`);
        throw e;
      }
    });
  }

  const rows = () => page.locator("#results-body [data-testid=record-row]");
  async function submitSearch(fill) {
    await Promise.all([
      page.waitForResponse((r) => r.url().includes("/v1/audit/records")),
      page.click("#reset-btn"),
    ]);
    await page.waitForSelector("#search-btn:not([disabled])");
    await fill();
    const [resp] = await Promise.all([
      page.waitForResponse((r) => r.url().includes("/v1/audit/records")),
      page.click("#search-btn"),
    ]);
    assert.equal(resp.status(), 200, await resp.text());
    await page.waitForSelector("#search-btn:not([disabled])");
    return resp.json();
  }

  step("opens /console in Chinese, with local times and names, and switches to English for good", async () => {
    const resp = await page.goto(`${demo.origin}/console`);
    assert.equal(resp.status(), 200);
    assert.match(resp.headers()["content-type"], /^text\/html/);
    await page.waitForSelector("body[data-ready=true]");
    assert.equal(await page.getAttribute("html", "lang"), "zh-CN");
    assert.equal(await page.textContent("#records-title"), "审计记录");
    assert.equal(await page.textContent("#subject-btn"), "生成报告");
    assert.match(await page.getByTestId("chain-status").textContent(), /^哈希链已验证：\d+ 条记录$/);
    assert.equal(await page.getByTestId("lang-toggle").textContent(), "English");
    assert.match(await page.locator("#results-table th.th-time").textContent(), /Asia\/Shanghai/);
    // Times in Asia/Shanghai (the browser runs in UTC), UTC on hover.
    const firstTime = rows().first().getByTestId("time");
    const utc = await firstTime.getAttribute("data-utc");
    assert.equal(await firstTime.getAttribute("title"), `UTC ${utc}`);
    const local = shanghai(utc);
    assert.equal(await firstTime.textContent(), local.day + local.clock);
    // Purposes and organisations by the names the policy gives them.
    const samrRow = rows().filter({ has: page.locator("[data-testid=caller] .name", { hasText: /^samr$/ }) })
      .filter({ has: page.locator("[data-testid=purpose][data-code=supervision]") }).first();
    assert.equal(await samrRow.getByTestId("purpose").textContent(), "监督管理supervision");
    assert.equal(await samrRow.getByTestId("organization").textContent(), "青岛市市场监督管理局");
    assert.equal(await samrRow.getByTestId("organization").getAttribute("title"), "Qingdao Administration for Market Regulation");
    assert.equal(await samrRow.getByTestId("outcome").textContent(), "允许");

    await page.click("#lang-toggle");
    assert.equal(await page.getAttribute("html", "lang"), "en");
    assert.equal(await page.textContent("#records-title"), "Audit records");
    assert.equal(await page.getByTestId("lang-toggle").textContent(), "中文");
    assert.equal(await samrRow.getByTestId("purpose").textContent(), "Supervisionsupervision");
    assert.equal(await samrRow.getByTestId("outcome").textContent(), "allowed");
    // Remembered: a reload comes back in English.
    await page.reload();
    await page.waitForSelector("body[data-ready=true]");
    assert.equal(await page.getAttribute("html", "lang"), "en");
    assert.equal(await page.textContent("#records-title"), "Audit records");
    assert.equal(await page.evaluate(() => localStorage.getItem("creditgate.console.lang")), "en");
    // Loading the console leaves no refusal for an icon in the log.
    const refused = await demo.request("privacy_officer", "GET", "/v1/audit/records?outcome=refused&limit=1000");
    assert.ok(!/favicon|apple-touch|robots/.test(refused.text), "no refused browser asset in the log");
  });

  step("shows the chain as verified", async () => {
    const status = page.getByTestId("chain-status");
    assert.equal(await status.getAttribute("data-state"), "ok", await status.textContent());
    const text = await status.textContent();
    const m = /^chain verified: (\d+) records$/.exec(text);
    assert.ok(m, `chain status: ${text}`);
    assert.ok(Number(m[1]) >= made.samr, text);
    assert.equal(await page.getByTestId("message").isVisible(), false);
  });

  step("finds samr's records by caller, with paging and record details", async () => {
    const expected = await demo.request("privacy_officer", "GET", "/v1/audit/records?caller=samr&limit=1");
    assert.equal(expected.status, 200, expected.text);
    const total = expected.json.total;
    assert.ok(total >= made.samr, `the log has ${total} samr records, we made ${made.samr}`);

    const page1 = await submitSearch(() => page.fill("#f-caller", "samr"));
    assert.equal(page1.total, total);
    assert.equal(await page.getByTestId("results-total").textContent(), String(total));
    assert.equal(await rows().count(), Math.min(total, 25));
    const callers = await rows().locator("[data-testid=caller] .name").allTextContents();
    assert.ok(callers.every((c) => c === "samr"), callers.join(","));
    const purposes = await rows().locator("[data-testid=purpose]").evaluateAll((cs) => cs.map((c) => c.dataset.code));
    assert.ok(purposes.includes("supervision"), purposes.join(","));
    assert.ok(purposes.includes("marketing"), purposes.join(","));
    // A purpose the policy does not name is shown by its code alone.
    const marketing = rows().locator("[data-testid=purpose][data-code=marketing]").first();
    assert.equal(await marketing.textContent(), "marketing");
    const orgs = await rows().locator("[data-testid=organization]").evaluateAll((cs) => cs.map((c) => c.dataset.org));
    samrOrganization = expected.json.items[0].caller.organization;
    assert.ok(orgs.every((o) => o === samrOrganization), orgs.join(","));
    const bases = await rows().locator("[data-testid=legal-basis]").allTextContents();
    assert.ok(bases.includes("duty:supervision"), bases.join(","));

    // The newest allowed look-up is ours: its details show the query on
    // market.licences with the subject key hashed, not the raw credit code.
    // Its stream-end record (rows delivered, sources) is listed too, newer.
    const onLicences = { has: page.locator("[data-testid=datasets]", { hasText: "market.licences" }) };
    const ends = page.locator("#results-body [data-testid=record-row][data-kind=stream-end]").filter(onLicences);
    assert.ok((await ends.count()) >= 1, "the query's stream-end record is listed");
    assert.match(await ends.first().getByTestId("reason").textContent(), /end of the stream of record #\d+/);
    assert.match(await ends.first().getByTestId("rows").textContent(), /^\d+$/);
    const licences = page.locator("#results-body [data-testid=record-row][data-kind=request]").filter(onLicences);
    await licences.first().click();
    const detail = page.getByTestId("record-detail").first();
    await detail.waitFor();
    const detailText = await detail.textContent();
    assert.match(detailText, /FROM market\.licences/);
    assert.ok(!detailText.includes(code), "the audit record must not hold the raw credit code");
    await licences.first().click();
    assert.equal(await page.getByTestId("record-detail").count(), 0);

    // Paging: 10 a page.
    await Promise.all([
      page.waitForResponse((r) => r.url().includes("/v1/audit/records") && r.url().includes("limit=10")),
      page.selectOption("#page-size", "10"),
    ]);
    await page.waitForFunction(() => document.querySelectorAll("#results-body [data-testid=record-row]").length <= 10);
    const firstSeqs = await rows().evaluateAll((rs) => rs.map((r) => r.dataset.seq));
    assert.equal(firstSeqs.length, Math.min(total, 10));
    if (total > 10) {
      assert.equal(await page.isEnabled("#next-page"), true);
      await Promise.all([
        page.waitForResponse((r) => r.url().includes("offset=10")),
        page.click("#next-page"),
      ]);
      await page.waitForSelector("#search-btn:not([disabled])");
      const nextSeqs = await rows().evaluateAll((rs) => rs.map((r) => r.dataset.seq));
      assert.equal(nextSeqs.length, Math.min(total - 10, 10));
      assert.ok(Math.max(...nextSeqs.map(Number)) < Math.min(...firstSeqs.map(Number)), "older records on page 2");
      assert.equal(await page.isEnabled("#prev-page"), true);
    }
    await Promise.all([
      page.waitForResponse((r) => r.url().includes("/v1/audit/records") && r.url().includes("limit=25")),
      page.selectOption("#page-size", "25"),
    ]);
    await page.waitForSelector("#search-btn:not([disabled])");
  });

  step("shows refused requests with their reason, as text", async () => {
    const result = await submitSearch(() => page.selectOption("#f-outcome", "refused"));
    assert.ok(result.total >= made.samrRefused + 1, `refused records: ${result.total}`);
    const outcomes = await rows().evaluateAll((rs) => rs.map((r) => r.dataset.outcome));
    assert.ok(outcomes.length > 0 && outcomes.every((o) => o === "refused"), outcomes.join(","));
    const reasons = await rows().locator("[data-testid=reason]").allTextContents();
    assert.ok(
      reasons.some((r) => r.includes('purpose "marketing" is not allowed for samr')),
      reasons.join("\n"),
    );
    assert.ok(reasons.some((r) => r.includes("CG-AUTH-002")), "the unknown organisation's refusal is listed");
    // The purpose that is markup is shown literally and never runs.
    const purposes = await rows().locator("[data-testid=purpose] [data-testid=purpose-code]").allTextContents();
    assert.ok(purposes.includes(XSS_PURPOSE), purposes.join("\n"));
    assert.equal(await page.locator("#results-table img").count(), 0);
    assert.equal(await page.evaluate(() => window.__xss), undefined);
  });

  step("shows the subject access report for the featured company", async () => {
    await page.fill("#subject-id", code);
    const [resp] = await Promise.all([
      page.waitForResponse((r) => r.url().includes("/v1/audit/subjects/")),
      page.click("#subject-btn"),
    ]);
    assert.equal(resp.status(), 200, await resp.text());
    await page.getByTestId("subject-result").waitFor();
    const summary = await page.getByTestId("subject-summary").textContent();
    assert.ok(summary.startsWith(`Credit code ${code}: `), summary);
    assert.match(await page.getByTestId("subject-hash").textContent(), /^[0-9a-f]{16,}$/);
    const samrRows = page
      .locator("#subject-body [data-testid=access-row]")
      .filter({ has: page.locator("[data-testid=caller] .name", { hasText: /^samr$/ }) });
    assert.ok((await samrRows.count()) >= 2, "samr's look-ups (the tour's and ours) are listed");
    const first = samrRows.first();
    assert.equal(await first.locator("[data-testid=purpose]").getAttribute("data-code"), "supervision");
    assert.equal(await first.locator("[data-testid=legal-basis]").textContent(), "duty:supervision");
    assert.equal(await first.getAttribute("data-outcome"), "allowed");
    const fields = await first.locator("[data-testid=fields] summary").textContent();
    assert.match(fields, /^\d+ fields? · /);
  });

  /** The report as the API gives it (the officer's own reads left out, as the console does by default). */
  async function apiReport() {
    const r = await demo.request("privacy_officer", "GET", `/v1/audit/subjects/${code}/report?limit=1000&own_reads=exclude`);
    assert.equal(r.status, 200, r.text);
    return r.json;
  }

  step("pages the subject report and sums it up: who, how often, which purposes", async () => {
    const whole = await apiReport();
    const all = whole.accesses.map((a) => String(a.seq));
    assert.ok(all.length > REPORT_PAGE, `the report has ${all.length} entries, more than one page`);
    assert.equal(await page.getByTestId("sum-accesses").textContent(), String(whole.summary.accesses));
    assert.equal(whole.summary.accesses, all.length);
    const samrTally = page.locator("[data-testid=sum-orgs] [data-testid=tally]", { hasText: "Qingdao Administration for Market Regulation" });
    const samrCount = whole.summary.organizations.find((o) => o.key === samrOrganization).accesses;
    assert.ok(samrCount >= EXTRA_LOOKUPS, `samr's organisation: ${samrCount}`);
    assert.equal(await samrTally.locator(".n").textContent(), String(samrCount));
    const purposeTally = page.locator("[data-testid=sum-purposes] [data-testid=tally][data-key=supervision]");
    assert.match(await purposeTally.textContent(), /^Supervision \(supervision\)\d+$/);
    assert.ok((await page.locator("[data-testid=sum-callers] [data-testid=tally][data-key=samr]").count()) === 1);

    // Page by page, following the cursor, to the end; and back.
    const seen = [];
    const pageSeqs = () => page.locator("#subject-body [data-testid=access-row]").evaluateAll((rs) => rs.map((r) => r.dataset.seq));
    const allFields = [];
    const maskChips = [];
    const collectMasks = async () => {
      allFields.push(...(await page.locator("#subject-body [data-testid=fields] summary").allTextContents()));
      maskChips.push(...(await page.locator("#subject-body [data-testid=fields] .chip.masked").allTextContents()));
    };
    const firstPage = await pageSeqs();
    await collectMasks();
    assert.equal(firstPage.length, REPORT_PAGE);
    assert.equal(await page.isEnabled("#subject-prev"), false);
    seen.push(...firstPage);
    for (let guard = 0; await page.isEnabled("#subject-next"); guard++) {
      assert.ok(guard < 50, "the pages end");
      const before = seen[seen.length - 1];
      await Promise.all([
        page.waitForResponse((r) => r.url().includes("/v1/audit/subjects/") && r.url().includes("cursor=")),
        page.click("#subject-next"),
      ]);
      await page.waitForFunction((b) => document.querySelector("#subject-body [data-testid=access-row]")?.dataset.seq !== b, before);
      await page.waitForSelector("#subject-btn:not([disabled])");
      seen.push(...(await pageSeqs()));
      await collectMasks();
    }
    assert.deepEqual(seen, all, "the pages together are the whole report, in order, without repeats");
    // Masks are shown: the credit agency's report (an older page) masks personal fields.
    assert.ok(allFields.some((f) => /· [1-9]\d* masked/.test(f)), allFields.join("\n"));
    assert.ok(maskChips.some((c) => /^resident_id · \S+/.test(c)), maskChips.join(","));
    assert.match(await page.getByTestId("subject-page-info").textContent(), new RegExp(` of ${all.length}$`));
    await Promise.all([page.waitForResponse((r) => r.url().includes("/v1/audit/subjects/")), page.click("#subject-prev")]);
    await page.waitForSelector("#subject-btn:not([disabled])");
    assert.ok((await page.isEnabled("#subject-next")), "a later page again");
    // The officer's own reads of the report are left out unless asked for.
    assert.equal(await page.locator("#subject-body [data-testid=access-row][data-own-read=true]").count(), 0);
    await Promise.all([page.waitForResponse((r) => r.url().includes("own_reads=include")), page.check("#subject-own")]);
    await page.waitForSelector("#subject-btn:not([disabled])");
    const own = page.locator("#subject-body [data-testid=access-row][data-own-read=true]");
    assert.ok((await own.count()) >= 1, "the officer's own reads of this report are listed and flagged");
    assert.equal(await own.first().getByTestId("own-read").textContent(), "your read");
    await Promise.all([page.waitForResponse((r) => r.url().includes("own_reads=exclude")), page.uncheck("#subject-own")]);
    await page.waitForSelector("#subject-btn:not([disabled])");
  });

  step("exports the subject report as CSV and as a printable page", async () => {
    const whole = await apiReport();
    const [download] = await Promise.all([page.waitForEvent("download"), page.click("#subject-csv")]);
    assert.match(download.suggestedFilename(), /^subject-report-credit_code-\d{4}-\d\d-\d\d\.csv$/);
    const csv = (await fsp.readFile(await download.path(), "utf8")).replace(/^\ufeff/, "");
    const lines = csv.split("\r\n").filter((l) => l !== "");
    assert.equal(lines[0], "seq,time_utc,caller,organization,role,frontend,purpose,legal_basis,datasets,fields,outcome,refusal_reason,own_read");
    const seqs = lines.slice(1).map((l) => l.split(",")[0]);
    // Exported after `whole` was read: the same entries (own reads are left out).
    assert.deepEqual(seqs, whole.accesses.map((a) => String(a.seq)));
    assert.ok(!csv.includes(code) || lines.every((l) => !l.startsWith(code)), "the CSV lists accesses, keyed by seq");

    // The printable page: built from every page of the report, then printed.
    await page.evaluate(() => {
      window.__printed = 0;
      window.print = () => { window.__printed += 1; };
    });
    await page.click("#subject-print");
    await page.waitForFunction(() => window.__printed === 1);
    assert.equal(await page.locator("#print-report [data-testid=print-row]").count(), whole.accesses.length);
    assert.match(await page.getByTestId("print-total").textContent(), new RegExp(`^${whole.summary.accesses} · `));
    const subject = await page.getByTestId("print-subject").textContent();
    assert.ok(subject.startsWith("Credit code ") && subject.includes(code.slice(0, 6)) && !subject.includes(code), subject);
    assert.match(await page.locator("#print-report h1").textContent(), /^Report of access to personal information$/);
    assert.match(await page.locator("#print-report").textContent(), /Article 45/);
    // In print, only the report shows.
    assert.equal(await page.isVisible("#print-report"), false, "not on screen");
    await page.emulateMedia({ media: "print" });
    try {
      assert.equal(await page.isVisible("#print-report"), true);
      assert.equal(await page.isVisible("#records-section"), false);
      assert.equal(await page.isVisible("header.top"), false);
    } finally {
      await page.emulateMedia({ media: "screen" });
    }
  });

  step("lists the officer's own console reads apart", async () => {
    const only = await submitSearch(() => page.selectOption("#f-own_reads", "only"));
    assert.ok(only.total >= 3, `own reads: ${only.total}`);
    const flags = await rows().evaluateAll((rs) => rs.map((r) => r.dataset.ownRead));
    assert.ok(flags.length > 0 && flags.every((f) => f === "true"), flags.join(","));
    assert.equal(await rows().first().getByTestId("own-read").textContent(), "your read");
    const callers = await rows().locator("[data-testid=caller] .name").allTextContents();
    assert.ok(callers.every((c) => c === "privacy_officer"), callers.join(","));
    const others = await submitSearch(() => page.selectOption("#f-own_reads", "exclude"));
    const otherFlags = await rows().evaluateAll((rs) => rs.map((r) => r.dataset.ownRead));
    assert.ok(otherFlags.every((f) => f === "false"), otherFlags.join(","));
    assert.ok(others.items.some((r) => r.caller.name === "samr"));
  });

  step("draws the activity chart and the flagged-callers list", async () => {
    const bars = page.locator("#activity-chart [data-testid=bar]");
    assert.ok((await bars.count()) >= 1, "at least one bar for today");
    const legend = await page.getByTestId("activity-legend").textContent();
    assert.ok(legend.includes(samrOrganization), legend);
    const orgRows = page.locator("#org-body [data-testid=org-row]");
    assert.ok((await orgRows.count()) >= 2);
    // No caller is flagged in the demo: the list says so.
    const flagged = await page.locator("#flagged-list [data-testid=flagged-caller]").count();
    if (flagged === 0) assert.match(await page.getByTestId("flagged-empty").textContent(), /^No caller flagged/);
  });

  /** Asserts that `error` sits right under `input`, overlapping it sideways. */
  async function besides(input, error) {
    const a = await page.locator(input).boundingBox();
    const b = await page.locator(error).boundingBox();
    assert.ok(a && b, `${input} and ${error} are on screen`);
    const gap = b.y - (a.y + a.height);
    assert.ok(gap >= 0 && gap <= 24, `${error} is ${gap}px below ${input}`);
    assert.ok(b.x < a.x + a.width && a.x < b.x + b.width, `${error} is beside ${input} (x ${b.x} vs ${a.x})`);
  }

  step("shows an error beside the field that caused it", async () => {
    // The subject report: an invalid identifier.
    await page.fill("#subject-id", "123");
    const [resp] = await Promise.all([
      page.waitForResponse((r) => r.url().includes("/v1/audit/subjects/")),
      page.click("#subject-btn"),
    ]);
    assert.equal(resp.status(), 400);
    const error = page.locator("#subject-id-error");
    await error.waitFor({ state: "visible" });
    const text = await error.textContent();
    assert.match(text, /CG-REQ-001/);
    assert.match(text, /not a valid unified social credit code/);
    assert.equal(await page.getAttribute("#subject-id", "aria-invalid"), "true");
    assert.equal(await page.getAttribute("#subject-id", "aria-describedby"), "subject-id-error");
    assert.equal(await page.getByTestId("message").isVisible(), false, "not in the message area at the top");
    await besides("#subject-id", "#subject-id-error");
    // Empty: said at once, in the page's language, without a request.
    await page.fill("#subject-id", "");
    await page.click("#subject-btn");
    assert.equal(await error.textContent(), "enter a unified social credit code or a resident ID");
    // The records search: an invalid subject filter, beside that filter.
    const [search] = await Promise.all([
      page.waitForResponse((r) => r.url().includes("/v1/audit/records")),
      (async () => { await page.fill("#f-subject", "123"); await page.click("#search-btn"); })(),
    ]);
    assert.equal(search.status(), 400);
    const filterError = page.locator("#f-subject-error");
    await filterError.waitFor({ state: "visible" });
    assert.match(await filterError.textContent(), /^CG-REQ-001 bad request: subject: not a valid/);
    await besides("#f-subject", "#f-subject-error");
    assert.equal(await page.getByTestId("message").isVisible(), false);
    // A correct search clears it.
    await page.fill("#f-subject", "");
    await Promise.all([page.waitForResponse((r) => r.url().includes("/v1/audit/records")), page.click("#search-btn")]);
    await page.waitForSelector("#search-btn:not([disabled])");
    assert.equal(await filterError.isVisible(), false);
    assert.equal(await page.getAttribute("#f-subject", "aria-invalid"), null);
  });

  step("looks clean (screenshot)", async () => {
    // Put the page in a representative state: samr's records, the report.
    await submitSearch(() => page.fill("#f-caller", "samr"));
    await page.fill("#subject-id", code);
    await Promise.all([page.waitForResponse((r) => r.url().includes("/v1/audit/subjects/")), page.click("#subject-btn")]);
    await page.getByTestId("subject-result").waitFor();
    await page.evaluate(() => window.scrollTo(0, 0));
    const file = path.join(tmp, "console.png");
    await page.screenshot({ path: file, fullPage: true });
    const png = await fsp.readFile(file);
    assert.equal(png.subarray(1, 4).toString("latin1"), "PNG");
    // Nothing overflows the viewport sideways.
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    assert.ok(overflow <= 0, `the page is ${overflow}px wider than the window`);
    // ... and at this width no table needs a horizontal scroll bar.
    const clipped = await page.evaluate(() =>
      [...document.querySelectorAll(".table-wrap")]
        .filter((w) => w.offsetParent !== null && w.scrollWidth > w.clientWidth)
        .map((w) => `${w.querySelector("table").id} (${w.scrollWidth - w.clientWidth}px)`),
    );
    assert.deepEqual(clipped, [], "tables wider than their card");
  });

  step("shows a tampered log as not verified, with the finding", async () => {
    // Change one byte of the oldest samr record in place (same length, so
    // the gateway's appends are undisturbed), then re-verify from the page.
    const segment = await oldestSegment(path.join(tmp, "state"));
    const bytes = await fsp.readFile(segment);
    const needle = Buffer.from('"purpose":"supervision"');
    const at = bytes.indexOf(needle);
    assert.ok(at >= 0, `no supervision record in ${segment}`);
    const handle = await fsp.open(segment, "r+");
    try {
      await handle.write(Buffer.from("m"), 0, 1, at + needle.length - 2); // supervision -> supervisiom
    } finally {
      await handle.close();
    }
    await Promise.all([
      page.waitForResponse((r) => r.url().includes("/v1/audit/verify")),
      page.click("#verify-btn"),
    ]);
    const status = page.locator("#chain-status[data-state=failed]");
    await status.waitFor();
    assert.match(await status.textContent(), /^chain NOT verified: record modified \(seq \d+\)$/);
    const finding = page.locator("#chain-findings [data-testid=chain-finding]").first();
    await finding.waitFor();
    assert.equal(await finding.getAttribute("data-kind"), "record_modified");
    assert.ok((await finding.textContent()).includes(path.basename(segment)), await finding.textContent());
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.screenshot({ path: path.join(tmp, "console-tampered.png") });
  });

  step("refuses the console to a data user's certificate (CG-POL-001)", async () => {
    const samr = demo.caller("samr");
    const context = await browser.newContext({
      clientCertificates: [{ origin: demo.origin, certPath: samr.cert, keyPath: samr.key }],
    });
    try {
      const other = await context.newPage();
      const resp = await other.goto(`${demo.origin}/console`);
      assert.equal(resp.status(), 403);
      assert.match(resp.headers()["content-type"], /^text\/html/);
      assert.equal(resp.headers()["x-creditgate-error-code"], "CG-POL-001");
      assert.equal(await other.getByTestId("refusal-code").textContent(), "CG-POL-001");
      assert.match(await other.getByTestId("refusal-message").textContent(), /privacy officers/);
      assert.equal(await other.getByTestId("refusal-title").textContent(), "无权访问");
      assert.equal(await other.locator("#chain-status").count(), 0, "the console page must not be served");
      assert.equal(await other.locator("script").count(), 0);
      // An API client still gets the JSON error.
      const json = await demo.request("samr", "GET", "/console");
      assert.equal(json.status, 403);
      assert.equal(json.json.error.code, "CG-POL-001");
    } finally {
      await context.close();
    }
    // The refusal is itself in the log.
    const logged = await demo.request("privacy_officer", "GET", "/v1/audit/records?caller=samr&outcome=refused&limit=5");
    assert.ok(
      logged.json.items.some((r) => (r.refusal_reason || "").includes("privacy officers")),
      logged.text,
    );
  });

  step("switches back to Chinese, everything on screen included", async () => {
    await page.click("#lang-toggle");
    assert.equal(await page.getAttribute("html", "lang"), "zh-CN");
    assert.ok((await page.getByTestId("subject-summary").textContent()).startsWith(`统一社会信用代码 ${code}：`));
    assert.match(await page.getByTestId("chain-status").textContent(), /^哈希链未通过验证：record modified（序号 \d+）$/);
    assert.equal(await page.evaluate(() => localStorage.getItem("creditgate.console.lang")), "zh");
    await page.fill("#subject-id", "");
    await page.click("#subject-btn");
    assert.equal(await page.locator("#subject-id-error").textContent(), "请填写统一社会信用代码或身份证号");
  });

  step("computes the linkability of masked columns, with warnings below min_k, in both languages", async () => {
    const summary = () => page.getByTestId("linkage-summary");
    async function compute() {
      await Promise.all([page.waitForResponse((r) => r.url().includes("/v1/audit/linkage")), page.click("#linkage-btn")]);
      await page.waitForSelector("#linkage-btn:not([disabled])");
    }
    const row = (principal, column) =>
      page.locator(`[data-testid=linkage-principal][data-principal=${principal}] tr[data-column="${column}"]`);

    // The demo policy passes: a table per principal that sees masked columns, no warning.
    await compute();
    assert.equal(await page.getAttribute("#linkage-summary", "data-passed"), "true");
    assert.equal(await summary().textContent(), "通过：所有不得关联的脱敏字段 k ≥ 5");
    const principals = await page.locator("[data-testid=linkage-principal]").evaluateAll((ns) => ns.map((n) => n.dataset.principal));
    assert.deepEqual(principals, ["samr", "credit_agency", "platform_a"]);
    assert.equal(await page.locator("[data-testid=linkage-warning]").count(), 0);
    const heads = await page.locator("[data-principal=samr] thead th").allTextContents();
    assert.deepEqual(heads, ["数据集.字段", "脱敏方式", "可关联", "人数", "唯一占比", "k", "组合 k", "可匹配字段"]);
    const mobile = row("samr", "complaints.complaints.complainant_mobile");
    assert.match(await mobile.textContent(), /mobile_prefix/);
    assert.ok(Number(await mobile.locator("[data-testid=linkage-k]").textContent()) >= 5);

    // The old masks (the demo reloads its policy on SIGHUP): the columns below
    // min_k a caller may not link are warnings.
    const policyFile = path.join(tmp, "policy.toml");
    const demoPolicy = await fsp.readFile(policyFile);
    await fsp.writeFile(policyFile, await fsp.readFile(OLD_MASKS_POLICY));
    demo.child.kill("SIGHUP");
    for (let i = 0; (await page.getAttribute("#linkage-summary", "data-passed")) !== "false"; i++) {
      assert.ok(i < 40, "the policy reload took effect");
      await sleep(250);
      await compute();
    }
    assert.match(await summary().textContent(), /^未通过：\d+ 个不得关联的字段 k < 5$/);
    const warned = await page.locator("[data-principal=samr] tr[data-below=true]").evaluateAll((ns) => ns.map((n) => n.dataset.column));
    assert.ok(warned.includes("complaints.complaints.complainant_mobile"), warned.join(", "));
    assert.ok(!warned.includes("complaints.complaints.complainant_id"), "a keyed hash may link: no warning");
    const old = row("samr", "complaints.complaints.complainant_mobile");
    assert.equal(await old.locator("[data-testid=linkage-k]").textContent(), "1");
    assert.equal(await old.locator("[data-testid=linkage-warning]").textContent(), "⚠ k 低于 5");
    assert.equal(await old.locator("td").first().evaluate((n) => getComputedStyle(n).backgroundColor), "rgb(255, 244, 224)");
    assert.match(await old.textContent(), /market\.enterprises\.phone · 同一脱敏 · \d+/);
    const keyed = row("samr", "complaints.complaints.complainant_id");
    assert.equal(await keyed.getAttribute("data-below"), "false");

    // In English, from what was fetched (no new request).
    await page.click("#lang-toggle");
    assert.match(await summary().textContent(), /^FAILED: \d+ columns a caller may not link with k < 5$/);
    assert.equal(await old.locator("[data-testid=linkage-warning]").textContent(), "⚠ k below 5");
    const englishHeads = await page.locator("[data-principal=samr] thead th").allTextContents();
    assert.deepEqual(englishHeads, ["dataset.column", "mask", "may link", "values", "unique", "k", "combined k", "matches"]);
    await page.locator("#linkage-section").screenshot({ path: path.join(tmp, "console-linkage.png") });
    await page.click("#lang-toggle");
    assert.equal(await page.getAttribute("html", "lang"), "zh-CN");

    // The demo policy back.
    await fsp.writeFile(policyFile, demoPolicy);
    demo.child.kill("SIGHUP");
    for (let i = 0; (await page.getAttribute("#linkage-summary", "data-passed")) !== "true"; i++) {
      assert.ok(i < 40, "the policy reload took effect");
      await sleep(250);
      await compute();
    }
  });

  step("gives no page to a browser without a client certificate", async () => {
    const context = await browser.newContext({ ignoreHTTPSErrors: true });
    try {
      const other = await context.newPage();
      let resp = null;
      let error = null;
      try {
        resp = await other.goto(`${demo.origin}/console`, { timeout: 15_000 });
      } catch (e) {
        error = e;
      }
      if (error === null) {
        assert.ok(resp.status() >= 400, `status ${resp.status()}`);
        assert.equal(await other.locator("#chain-status").count(), 0);
      } else {
        console.log(`no-certificate navigation: ${String(error.message).split("\n")[0]}`);
        assert.match(String(error.message), /net::ERR_/);
      }
    } finally {
      await context.close();
    }
  });
});
