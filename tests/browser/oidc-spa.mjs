// Drives Debian's Chromium (through playwright-core) through a browser app on oidc-client-ts
// (tests/browser/spa/): the app redirects to portcullis, the driver fills the login page and
// allows on the consent page like a person would, and the app finishes the sign-in. Prints one
// JSON object: {"done": <what the app recorded>, "pages": [...], "console": [...], "error"?}.
//
// Usage: node tests/browser/oidc-spa.mjs <app url> <portcullis url> <email> <password>
import { chromium } from "playwright-core";

const [appUrl, issuer, email, password] = process.argv.slice(2);
const executablePath = process.env.PORTCULLIS_CHROMIUM || "/usr/bin/chromium";
const report = { done: null, pages: [], console: [] };
let browser;
try {
  browser = await chromium.launch({
    executablePath,
    headless: true,
    args: ["--disable-gpu", "--disable-dev-shm-usage", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  const page = await (await browser.newContext()).newPage();
  page.on("console", (message) => report.console.push(`${message.type()}: ${message.text()}`));
  page.on("pageerror", (error) => report.console.push(`pageerror: ${error.message}`));
  await page.goto(appUrl);
  await page.waitForURL((url) => url.href.startsWith(`${issuer}/login`), { timeout: 20000 });
  report.pages.push(new URL(page.url()).pathname);
  await page.fill("#email", email);
  await page.fill("#password", password);
  await Promise.all([page.waitForURL((url) => url.pathname === "/consent"), page.click("button[type=submit]")]);
  report.pages.push(new URL(page.url()).pathname);
  await Promise.all([page.waitForURL((url) => url.href.startsWith(`${appUrl}callback`)), page.click("button[value=allow]")]);
  report.pages.push(new URL(page.url()).pathname);
  await page.waitForFunction(() => window.__oidcDone, null, { timeout: 20000 });
  report.done = await page.evaluate(() => window.__oidcDone);
} catch (error) {
  report.error = String(error);
} finally {
  await browser?.close();
}
console.log(JSON.stringify(report));
process.exit(report.done?.ok ? 0 : 1);
