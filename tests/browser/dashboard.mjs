// The dashboard in a real browser: Debian's chromium, headless, driven by playwright-core.
// Opens <url>/dashboard, gives the token, waits for the live stream, sends a message over the
// API and waits until the dashboard shows it read and its counters moved; checks the token is
// kept for the session only; saves a full-page screenshot. Exits non-zero saying what failed.
//
//   node tests/browser/dashboard.mjs --url http://127.0.0.1:8080 --token "$WASP_ADMIN_TOKEN" \
//     [--screenshot target/artifacts/dashboard.png] [--to +6591234567]
//
// Needs: node 20+, `npm ci --prefix tests/browser`, and chromium (`apt-get install chromium`;
// another binary with CHROMIUM=/path). scripts/test installs what is missing.

import { existsSync, mkdirSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { parseArgs } from "node:util";

const WAIT_MS = 30_000;
const DEFAULT_CHROMIUM = "/usr/bin/chromium";

function fail(message) {
  console.error(`dashboard test: ${message}`);
  process.exit(1);
}

const { values: options } = parseArgs({
  options: {
    url: { type: "string" },
    token: { type: "string" },
    screenshot: { type: "string", default: "target/artifacts/dashboard.png" },
    to: { type: "string", default: "+6591234567" },
  },
});
if (!options.url || !options.token) {
  fail("usage: node dashboard.mjs --url URL --token TOKEN [--screenshot PATH] [--to +E164]");
}
const base = options.url.replace(/\/+$/, "");
const screenshot = resolve(options.screenshot);

const executablePath = process.env.CHROMIUM || DEFAULT_CHROMIUM;
if (!existsSync(executablePath)) {
  fail(`no chromium at ${executablePath}: install it with \`apt-get install chromium\` (as root; scripts/test does), or set CHROMIUM=/path/to/chromium`);
}

let chromium;
try {
  ({ chromium } = await import("playwright-core"));
} catch (error) {
  fail(`playwright-core is not installed (${error.message}): run \`npm ci --prefix tests/browser\` (scripts/test does)`);
}

/** The counters the dashboard shows, as numbers (NaN until the first tick). */
async function counters(page) {
  return page.evaluate(() => {
    const read = (step) => Number(document.getElementById(`count-${step}`).textContent.replace(/[^0-9]/g, "") || "NaN");
    return { accepted: read("accepted"), sent: read("sent"), delivered: read("delivered"), read: read("read") };
  });
}

async function send() {
  const response = await fetch(`${base}/v1/messages`, {
    method: "POST",
    headers: { Authorization: `Bearer ${options.token}`, "Content-Type": "application/json" },
    body: JSON.stringify({
      to: options.to,
      category: "utility",
      content: { type: "text", text: { body: "Your order has shipped." } },
    }),
  });
  const body = await response.json().catch(() => null);
  if (response.status !== 202 || !body || !body.id) {
    throw new Error(`sending a message answered ${response.status}: ${JSON.stringify(body)}`);
  }
  return body.id;
}

async function step(name, action) {
  try {
    return await action();
  } catch (error) {
    throw new Error(`${name}: ${error.message.split("\n")[0]}`);
  }
}

const browser = await chromium
  .launch({ executablePath, headless: true, args: ["--no-sandbox", "--disable-dev-shm-usage"] })
  .catch((error) => fail(`starting ${executablePath}: ${error.message}`));
const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
const pageErrors = [];
page.on("pageerror", (error) => pageErrors.push(error.message));
page.on("console", (message) => {
  // A panel whose route this server lacks answers 404, which the page shows as an empty state.
  if (message.type() === "error" && !message.text().startsWith("Failed to load resource")) {
    pageErrors.push(message.text());
  }
});
page.setDefaultTimeout(WAIT_MS);

let failure = null;
try {
  await step("opening the dashboard", async () => {
    const response = await page.goto(`${base}/dashboard`);
    if (!response || response.status() !== 200) {
      throw new Error(`GET /dashboard answered ${response && response.status()}`);
    }
    await page.locator("#token-form").waitFor({ state: "visible" });
  });

  await step("giving the token", async () => {
    await page.fill("#token", options.token);
    await page.click("#token-submit");
    await page.locator("#dashboard").waitFor({ state: "visible" });
  });

  await step("waiting for the live stream", async () => {
    await page.locator('#connection[data-state="connected"]').waitFor();
    await page.waitForFunction(() => Number(document.getElementById("counters").dataset.ticks) >= 1);
  });
  const before = await counters(page);
  if (Object.values(before).some(Number.isNaN)) {
    throw new Error(`the counters show no numbers after a tick: ${JSON.stringify(before)}`);
  }

  const id = await step("sending a message", send);
  console.log(`dashboard test: sent ${id}; counters before ${JSON.stringify(before)}`);

  await step(`waiting for message ${id} to show as read`, async () => {
    await page.locator(`#messages tr[data-id="${id}"][data-status="read"]`).waitFor();
  });
  await step("waiting for the counters to move", async () => {
    await page.waitForFunction(
      (earlier) => {
        const read = (name) => Number(document.getElementById(`count-${name}`).textContent.replace(/[^0-9]/g, ""));
        return ["sent", "delivered", "read"].every((name) => read(name) > earlier[name]);
      },
      before,
    );
  });
  const after = await counters(page);
  console.log(`dashboard test: counters after ${JSON.stringify(after)}`);

  await step("checking the panels", async () => {
    await page.locator("#plugins tr[data-plugin]").first().waitFor();
    await page.locator("#regions tr[data-country]").first().waitFor();
  });

  await step("checking where the token is kept", async () => {
    const kept = await page.evaluate(() => ({
      session: sessionStorage.getItem("wasp.token"),
      lasting: localStorage.length,
      url: location.href,
    }));
    if (kept.session !== options.token) {
      throw new Error("the token is not in sessionStorage");
    }
    if (kept.lasting !== 0) {
      throw new Error("something was written to localStorage");
    }
    if (kept.url.includes(options.token)) {
      throw new Error("the token is in the URL");
    }
  });

  // Let a chart redraw with the new point before the picture.
  await page.waitForFunction(
    (ticks) => Number(document.getElementById("counters").dataset.ticks) > ticks,
    await page.evaluate(() => Number(document.getElementById("counters").dataset.ticks)),
  );
  mkdirSync(dirname(screenshot), { recursive: true });
  await page.screenshot({ path: screenshot, fullPage: true });
  console.log(`dashboard test: screenshot saved to ${screenshot}`);

  await step("forgetting the token", async () => {
    await page.click("#forget");
    await page.locator("#token-form").waitFor({ state: "visible" });
    const session = await page.evaluate(() => sessionStorage.getItem("wasp.token"));
    if (session !== null) {
      throw new Error("the token is still in sessionStorage");
    }
  });

  if (pageErrors.length > 0) {
    throw new Error(`the page logged errors: ${pageErrors.join("; ")}`);
  }
} catch (error) {
  failure = error;
  const failed = screenshot.replace(/(\.png)?$/, "-failure.png");
  mkdirSync(dirname(failed), { recursive: true });
  await page.screenshot({ path: failed, fullPage: true }).catch(() => {});
  console.error(`dashboard test: the page at the failure is in ${failed}`);
}
await browser.close();
if (failure) {
  fail(failure.message);
}
console.log("dashboard test: passed");
