// Opens a page in Debian's Chromium (through playwright-core, never Playwright's own browser
// download) with a CDP virtual authenticator attached, waits until the page's script has set
// `window.__passkeyDone`, and prints one JSON object on stdout:
//
//   {"done": bool, "result": <what the page recorded>, "console": [...], "error": "..."?}
//
// Usage: node tests/browser/passkey.mjs <page url>
// Chromium: PORTCULLIS_CHROMIUM, else /usr/bin/chromium. Exit status 0 when the page finished,
// 1 otherwise (the JSON is printed either way, for the test to show).

import { chromium } from "playwright-core";

const url = process.argv[2];
if (!url) {
  console.error("usage: node passkey.mjs <page url>");
  process.exit(2);
}
const executablePath = process.env.PORTCULLIS_CHROMIUM || "/usr/bin/chromium";
const waitMs = Number(process.env.PORTCULLIS_BROWSER_WAIT_MS || 40000);

const report = { done: false, result: null, console: [] };
let browser;
try {
  browser = await chromium.launch({
    executablePath,
    headless: true,
    // This machine has no network but loopback: keep Chromium from reaching out at all.
    args: [
      "--disable-gpu",
      "--disable-dev-shm-usage",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  const context = await browser.newContext();
  const page = await context.newPage();
  page.on("console", (message) => report.console.push(`${message.type()}: ${message.text()}`));
  page.on("pageerror", (error) => report.console.push(`pageerror: ${error.message}`));

  // The authenticator belongs to the page's target, so it is there before the page loads.
  const cdp = await context.newCDPSession(page);
  await cdp.send("WebAuthn.enable");
  const { authenticatorId } = await cdp.send("WebAuthn.addVirtualAuthenticator", {
    options: {
      protocol: "ctap2",
      transport: "internal",
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
      automaticPresenceSimulation: true,
    },
  });
  report.authenticator = authenticatorId;

  await page.goto(url, { waitUntil: "load" });
  try {
    await page.waitForFunction(() => window.__passkeyDone === true, null, { timeout: waitMs });
    report.done = true;
  } catch (error) {
    report.error = `the page did not finish within ${waitMs} ms: ${error.message}`;
  }
  report.result = await page.evaluate(() => window.__passkey ?? null);
  const { credentials } = await cdp.send("WebAuthn.getCredentials", { authenticatorId });
  report.credentials = credentials.map((c) => ({
    isResidentCredential: c.isResidentCredential,
    rpId: c.rpId,
    signCount: c.signCount,
    userHandle: c.userHandle,
  }));
} catch (error) {
  report.error = String(error && error.stack ? error.stack : error);
} finally {
  if (browser) await browser.close().catch(() => {});
}
process.stdout.write(JSON.stringify(report) + "\n");
process.exit(report.done ? 0 : 1);
