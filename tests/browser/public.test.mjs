// Browser test of the public credit window (`/` and `/embed` on the public
// listener, no client certificate).
//
// Starts `creditgate demo --serve` (binary from CREDITGATE_BIN) in a fresh
// temporary directory and drives the page in headless Debian Chromium
// through playwright-core: search by credit code and by name prefix, the
// featured enterprise's page with every section the gateway lists, the
// English switch, a phone-sized viewport, a section the page does not know
// in advance (as a config-only section arrives), and the embeddable widget
// inside another page. Every request the browser makes must go to the
// gateway's own origin. Screenshots are kept in the temporary directory
// (public-*.png).
//
// The public listener's certificate is signed by the demo CA: the browser
// context ignores certificate errors, and the test checks the certificate
// itself with Node against that CA before the browser starts.
//
// Run: CREDITGATE_BIN=target/debug/creditgate node --test tests/browser/
// Set CREDITGATE_KEEP_DIR=1 to keep the demo directory after a passing run.

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import fs from "node:fs";
import fsp from "node:fs/promises";
import http from "node:http";
import https from "node:https";
import os from "node:os";
import path from "node:path";
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
const DEMO_START_TIMEOUT_MS = 180_000;
const REQUEST_TIMEOUT_MS = 30_000;
const DEMO_STOP_TIMEOUT_MS = 15_000;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** A running `creditgate demo --serve`, seen from its public listener. */
class Demo {
  static async start(bin, dir) {
    const log = fs.openSync(path.join(dir, "demo.log"), "w");
    const child = spawn(bin, ["demo", "--serve", "--dir", dir], { stdio: ["ignore", log, log], env: { ...process.env, NO_COLOR: "1" } });
    fs.closeSync(log);
    const demo = new Demo(child, dir);
    demo.exited = new Promise((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));
    child.once("error", (e) => {
      demo.spawnError = e;
    });
    const deadline = Date.now() + DEMO_START_TIMEOUT_MS;
    for (;;) {
      if (demo.spawnError) throw new Error(`cannot run ${bin}: ${demo.spawnError.message}`);
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new Error(`creditgate demo exited early; log:\n${demo.logTail()}`);
      }
      try {
        demo.endpoints = JSON.parse(await fsp.readFile(path.join(dir, "endpoints.json"), "utf8"));
        break;
      } catch {
        // not written yet
      }
      if (Date.now() > deadline) {
        await demo.stop();
        throw new Error(`no endpoints.json after ${DEMO_START_TIMEOUT_MS} ms; log:\n${demo.logTail()}`);
      }
      await sleep(250);
    }
    demo.manifest = JSON.parse(await fsp.readFile(path.join(dir, "data", "manifest.json"), "utf8"));
    assert.ok(demo.endpoints.public, "the demo's public listener is on");
    const url = new URL(demo.endpoints.public);
    demo.port = Number(url.port);
    demo.host = url.hostname;
    demo.origin = `https://${url.host}`;
    demo.caPem = await fsp.readFile(demo.endpoints.ca_file);
    return demo;
  }

  constructor(child, dir) {
    this.child = child;
    this.dir = dir;
  }

  logTail() {
    try {
      return fs.readFileSync(path.join(this.dir, "demo.log"), "utf8").split("\n").slice(-40).join("\n");
    } catch {
      return "(no log)";
    }
  }

  /** GET on the public listener, verifying its certificate against the demo CA. */
  get(urlPath) {
    return new Promise((resolve, reject) => {
      const req = https.request(
        {
          host: this.host,
          port: this.port,
          servername: this.endpoints.server_name || "localhost",
          method: "GET",
          path: urlPath,
          headers: { accept: "application/json" },
          ca: this.caPem,
          timeout: REQUEST_TIMEOUT_MS,
        },
        (res) => {
          const chunks = [];
          res.on("data", (d) => chunks.push(d));
          res.on("end", () => {
            const text = Buffer.concat(chunks).toString("utf8");
            let json = null;
            try {
              json = JSON.parse(text);
            } catch {
              json = null;
            }
            resolve({ status: res.statusCode, headers: res.headers, text, json });
          });
          res.on("error", reject);
        },
      );
      req.on("timeout", () => req.destroy(new Error(`GET ${urlPath}: no answer in ${REQUEST_TIMEOUT_MS} ms`)));
      req.on("error", reject);
      req.end();
    });
  }

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

describe("public credit window", { timeout: 600_000 }, () => {
  let tmp;
  let demo;
  let browser;
  let context;
  let page;
  let ready = false;
  let failed = false;
  const pageErrors = [];
  const requests = []; // every URL the browser asked for
  let code;
  let name;
  let expected; // the featured enterprise's answer, read by the test itself
  let platformPage; // the stand-in for a platform's home page (another origin)

  before(async () => {
    const bin = process.env.CREDITGATE_BIN;
    assert.ok(bin && fs.existsSync(bin), "set CREDITGATE_BIN to the creditgate binary");
    assert.ok(fs.existsSync(CHROMIUM), `${CHROMIUM} not found; install Debian's chromium (scripts/browser-test.sh does)`);
    tmp = await fsp.mkdtemp(path.join(os.tmpdir(), "creditgate-public-"));
    demo = await Demo.start(bin, tmp);
    process.once("exit", () => demo?.child.kill("SIGKILL"));
    code = demo.manifest.featured.enterprise_credit_code;
    name = demo.manifest.featured.enterprise_name;
    // The certificate is the demo CA's (checked here), and the answer is known.
    const answer = await demo.get(`/public/v1/enterprises/${code}`);
    assert.equal(answer.status, 200, answer.text);
    expected = answer.json;
    assert.ok(expected.sections.length >= 6, "the demo window has its sections");

    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true });
    context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 900 }, locale: "zh-CN", timezoneId: "UTC" });
    context.on("request", (r) => requests.push(r.url()));
    page = await context.newPage();
    page.setDefaultTimeout(30_000);
    page.on("pageerror", (e) => pageErrors.push(e.message));
    ready = true;
  });

  after(async () => {
    await context?.close().catch(() => {});
    await browser?.close().catch(() => {});
    await demo?.stop();
    if (!tmp) return;
    if (ready && !failed && !process.env.CREDITGATE_KEEP_DIR) {
      for (const entry of await fsp.readdir(tmp)) {
        if (!entry.endsWith(".png")) await fsp.rm(path.join(tmp, entry), { recursive: true, force: true });
      }
      console.log(`screenshots: ${tmp}/public-*.png`);
    } else {
      console.log(`demo directory kept: ${tmp} (log: ${path.join(tmp, "demo.log")})`);
      if (demo) console.log(demo.logTail());
    }
  });

  function step(title, fn) {
    it(title, async () => {
      try {
        await fn();
        assert.deepEqual(pageErrors, [], "no script error in the page");
      } catch (e) {
        failed = true;
        throw e;
      }
    });
  }

  const shot = (file, target = page) => target.screenshot({ path: path.join(tmp, file), fullPage: true });

  step("search by credit code opens the enterprise's page with every section", async () => {
    await page.goto(`${demo.origin}/`);
    assert.equal(await page.locator("html").getAttribute("lang"), "zh-CN");
    await page.getByLabel("统一社会信用代码或企业名称").fill(code);
    await page.getByLabel("统一社会信用代码或企业名称").press("Enter");
    await page.locator("#ent-title").filter({ hasText: name }).waitFor();
    const shown = await page.locator("#sections [data-section]").evaluateAll((nodes) => nodes.map((n) => n.dataset.section));
    assert.deepEqual(shown, expected.sections.map((s) => s.name), "every configured section, in order");
    for (const section of expected.sections) {
      const heading = page.locator(`#section-${section.name}`);
      assert.equal((await heading.textContent()).trim(), section.title.zh);
    }
    // Penalties with their period, black-list status, shops' marks.
    const penalties = page.locator('[data-section="penalties"] tbody tr');
    assert.equal(await penalties.count(), expected.penalties.length);
    assert.ok(expected.penalties.length > 0);
    assert.match(await penalties.first().textContent(), /公示至 \d{4}-\d{2}-\d{2}（《市场监督管理行政处罚信息公示规定》第十三条/);
    const badge = page.locator('[data-section="black_list"] .badge');
    assert.equal((await badge.textContent()).trim(), expected.on_black_list ? "在名单上" : "不在名单上");
    assert.match(await page.locator('[data-section="shops_platform_a"]').textContent(), /已实名核验/);
    assert.match(await page.locator('[data-section="commitments_platform_a"]').textContent(), /承诺/);
    assert.match(await page.locator("#machine").textContent(), /JSON.*CSV/);
    assert.match(page.url(), new RegExp(`code=${code}`));
    await shot("public-enterprise-zh.png");
  });

  step("search by name prefix lists the enterprise; its link opens the page", async () => {
    await page.goto(`${demo.origin}/`);
    const prefix = [...name].slice(0, 4).join("");
    await page.getByLabel("统一社会信用代码或企业名称").fill(prefix);
    await page.getByRole("button", { name: "查询" }).click();
    const link = page.locator("#result-list a", { hasText: name });
    await link.waitFor();
    const names = await page.locator("#result-list a").allTextContents();
    assert.ok(names.every((n) => n.startsWith(prefix)), names.join(", "));
    assert.match(await page.locator("#status").textContent(), /找到 \d+ 家企业/);
    await shot("public-results-zh.png");
    await link.click();
    await page.locator("#ent-title").filter({ hasText: name }).waitFor();
    // Back returns to the results (history is kept).
    await page.goBack();
    await page.locator("#result-list a", { hasText: name }).waitFor();
  });

  step("a too short query is refused with a message, not a crash", async () => {
    await page.goto(`${demo.origin}/?q=%E9%9D%92`);
    await page.locator("#status.error").waitFor();
    assert.match(await page.locator("#status").textContent(), /查询失败/);
  });

  step("the English switch translates the page and keeps the enterprise", async () => {
    await page.goto(`${demo.origin}/?code=${code}`);
    await page.locator("#ent-title").filter({ hasText: name }).waitFor();
    await page.getByRole("button", { name: "Switch to English" }).click();
    assert.equal(await page.locator("html").getAttribute("lang"), "en");
    assert.equal((await page.locator("#title").textContent()).trim(), "Look up an enterprise's credit information");
    assert.equal((await page.locator("#section-penalties").textContent()).trim(), "Administrative penalties");
    assert.match(await page.locator('[data-section="penalties"] tbody tr').first().textContent(), /Shown until \d{4}-\d{2}-\d{2} \(SAMR Order 45, Art\. 13/);
    assert.match(page.url(), /lang=en/);
    await page.reload();
    await page.locator("#section-penalties").filter({ hasText: "Administrative penalties" }).waitFor();
    await shot("public-enterprise-en.png");
    await page.getByRole("button", { name: "切换到中文" }).click();
    assert.equal(await page.locator("html").getAttribute("lang"), "zh-CN");
  });

  step("keyboard only: skip link, search field, results", async () => {
    await page.goto(`${demo.origin}/`);
    await page.keyboard.press("Tab");
    assert.equal(await page.evaluate(() => document.activeElement.className), "skip");
    await page.locator("#q").focus();
    await page.keyboard.type(code);
    await page.keyboard.press("Enter");
    await page.locator("#ent-title").filter({ hasText: name }).waitFor();
    assert.equal(await page.evaluate(() => document.activeElement.id), "ent-title", "focus moves to the answer");
  });

  step("on a phone the page fits the screen", async () => {
    const phone = await context.newPage();
    phone.on("pageerror", (e) => pageErrors.push(e.message));
    await phone.setViewportSize({ width: 375, height: 800 });
    await phone.goto(`${demo.origin}/?code=${code}`);
    await phone.locator("#ent-title").filter({ hasText: name }).waitFor();
    const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 1, `no horizontal scrolling (${overflow}px)`);
    await shot("public-enterprise-phone.png", phone);
    await phone.close();
  });

  step("a section the page does not know (added in config) is shown from the answer", async () => {
    const extra = await context.newPage();
    extra.on("pageerror", (e) => pageErrors.push(e.message));
    await extra.route(`**/public/v1/enterprises/${code}`, async (route) => {
      const response = await route.fetch();
      const body = await response.json();
      body.sections.push({ name: "new_section", title: { zh: "新增公示栏目", en: "A new section" }, shape: "records", columns: ["item"], publication: null });
      body.new_section = [{ item: "内容一" }];
      await route.fulfill({ response, json: body });
    });
    await extra.goto(`${demo.origin}/?code=${code}`);
    await extra.locator("#section-new_section").filter({ hasText: "新增公示栏目" }).waitFor();
    assert.match(await extra.locator('[data-section="new_section"]').textContent(), /内容一/);
    await extra.close();
  });

  step("the embed widget works inside another page and opens the window", async () => {
    const embed = await demo.get("/embed");
    assert.match(embed.headers["content-security-policy"], /frame-ancestors \*/);
    // A platform's home page on another origin (a server of this test on
    // another loopback port): the widget must work framed there.
    const platform = http.createServer((req, res) => {
      res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
      res.end(`<!doctype html><html lang="en"><body><h1>A platform's home page</h1>
        <iframe src="${demo.origin}/embed" title="企业信用查询" width="420" height="150"></iframe></body></html>`);
    });
    await new Promise((resolve) => platform.listen(0, "127.0.0.1", resolve));
    platformPage = `http://127.0.0.1:${platform.address().port}/`;
    const host = await context.newPage();
    host.on("pageerror", (e) => pageErrors.push(e.message));
    await host.goto(platformPage);
    const frame = host.frameLocator("iframe");
    await frame.getByLabel(/企业信用查询/).fill(code);
    await shot("public-embed.png", host);
    const [opened] = await Promise.all([context.waitForEvent("page"), frame.getByRole("button", { name: /查询/ }).click()]);
    opened.on("pageerror", (e) => pageErrors.push(e.message));
    await opened.locator("#ent-title").filter({ hasText: name }).waitFor();
    assert.ok(opened.url().startsWith(`${demo.origin}/`), opened.url());
    await opened.close();
    await host.close();
    platform.close();
    // The snippet on the page names this origin's widget.
    await page.goto(`${demo.origin}/`);
    assert.match(await page.locator("#snippet").textContent(), new RegExp(`<iframe src="${demo.origin}/embed"`));
  });

  step("no request left the gateway's origin", async () => {
    const elsewhere = requests.filter(
      (u) => !u.startsWith(`${demo.origin}/`) && !u.startsWith("about:") && !u.startsWith("data:") && u !== platformPage,
    );
    assert.deepEqual(elsewhere, []);
    assert.ok(requests.some((u) => u.includes("/public/v1/search")), "the page searched through the API");
  });
});
