// Browser test of the privacy-officer console (`/console`).
//
// Starts `creditgate demo --serve` (binary from CREDITGATE_BIN) in a fresh
// temporary directory, makes requests as the data user `samr` (allowed
// look-ups of the featured company and refused ones), then drives the console
// in headless Debian Chromium through playwright-core with the privacy
// officer's client certificate: chain status, search by caller, search for
// refusals, the subject access report, the activity chart, an API error shown
// to the user, and a screenshot (<tmp>/console.png). Negative controls: a data
// user's certificate gets the policy refusal instead of the page, and no
// certificate gets no page at all.
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
/** Upper bound for the demo to generate its data and write endpoints.json. */
const DEMO_START_TIMEOUT_MS = 180_000;
/** Upper bound for one HTTP request made by the test itself. */
const REQUEST_TIMEOUT_MS = 30_000;
/** Upper bound for the demo to exit after SIGTERM before it is killed. */
const DEMO_STOP_TIMEOUT_MS = 15_000;

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
  request(caller, method, urlPath, { purpose, json } = {}) {
    const c = this.caller(caller);
    const headers = { accept: "application/json" };
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

    // Traffic as samr: look-ups of the featured company ...
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
      console.log(`screenshots: ${path.join(tmp, "console.png")}, ${path.join(tmp, "console-tampered.png")}`);
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

  step("opens /console and shows the chain as verified", async () => {
    const resp = await page.goto(`${demo.origin}/console`);
    assert.equal(resp.status(), 200);
    assert.match(resp.headers()["content-type"], /^text\/html/);
    await page.waitForSelector("body[data-ready=true]");
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
    const purposes = await rows().locator("[data-testid=purpose]").allTextContents();
    assert.ok(purposes.includes("supervision"), purposes.join(","));
    assert.ok(purposes.includes("marketing"), purposes.join(","));
    const orgs = await rows().locator("[data-testid=organization]").allTextContents();
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
    const purposes = await rows().locator("[data-testid=purpose]").allTextContents();
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
    assert.equal(await first.locator("[data-testid=purpose]").textContent(), "supervision");
    assert.equal(await first.locator("[data-testid=legal-basis]").textContent(), "duty:supervision");
    assert.equal(await first.getAttribute("data-outcome"), "allowed");
    const fields = await first.locator("[data-testid=fields] summary").textContent();
    assert.match(fields, /^\d+ fields? · /);
    // Masks are shown: the credit agency's report masks personal fields.
    const allFields = await page.locator("#subject-body [data-testid=fields] summary").allTextContents();
    assert.ok(allFields.some((f) => /· [1-9]\d* masked/.test(f)), allFields.join("\n"));
    const maskChips = await page.locator("#subject-body [data-testid=fields] .chip.masked").allTextContents();
    assert.ok(maskChips.some((c) => /^resident_id · \S+/.test(c)), maskChips.join(","));
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

  step("shows an API error's message in the message area", async () => {
    await page.fill("#subject-id", "123");
    const [resp] = await Promise.all([
      page.waitForResponse((r) => r.url().includes("/v1/audit/subjects/")),
      page.click("#subject-btn"),
    ]);
    assert.equal(resp.status(), 400);
    const message = page.getByTestId("message");
    await message.waitFor({ state: "visible" });
    const text = await message.textContent();
    assert.match(text, /CG-REQ-001/);
    assert.match(text, /not a valid unified social credit code/);
    await page.click("#message-close");
    assert.equal(await message.isVisible(), false);
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
      assert.match(resp.headers()["content-type"], /^application\/json/);
      const body = await resp.json();
      assert.equal(body.error.code, "CG-POL-001");
      assert.match(body.error.message, /privacy officers/);
      assert.equal(await other.locator("#chain-status").count(), 0, "the console page must not be served");
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
