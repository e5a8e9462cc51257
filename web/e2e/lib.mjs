// What the console's end-to-end drivers share: a headless Chromium
// (Debian's, through puppeteer-core), a result object printed as one JSON
// line, CSP and page-error watching, screenshots, the terminal's buffer.
import puppeteer from 'puppeteer-core';
import fs from 'node:fs';
import path from 'node:path';

export const sleep = (ms) => new Promise((res) => setTimeout(res, ms));

// run launches Chromium, calls body(ctx) and prints {steps, log, csp,
// measure, error, screen} whatever happens. The driver's arguments that
// start with "--" (after its own) are Chromium's.
export async function run(work, shots, body) {
  const args = process.argv.slice(2).filter((a) => a.startsWith('--'));
  fs.mkdirSync(shots, { recursive: true });
  const r = { steps: [], log: [], csp: [], measure: {} };
  const browser = await puppeteer.launch({
    executablePath: '/usr/bin/chromium',
    headless: true,
    userDataDir: path.join(work, 'profile'),
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync', ...args],
    acceptInsecureCerts: args.includes('--ignore-certificate-errors'),
  });
  const ctx = {
    browser, r,
    page: null,
    step: (name, data = {}) => r.steps.push({ name, ...data }),
    shot: async (name, p = ctx.page) => { await p.screenshot({ path: path.join(shots, name + '.png') }); },
    watch: (p, tag) => {
      p.on('console', (m) => {
        const t = m.text();
        if (tag === 'console' && /Content Security Policy/i.test(t)) r.csp.push(t);
        r.log.push(tag + ' ' + m.type() + ': ' + t);
      });
      p.on('pageerror', (e) => r.log.push(tag + ' page error: ' + e.message));
      // A native dialog would be a bug now (the console's own <dialog>
      // replaced confirm/alert): note it, and dismiss it.
      p.on('dialog', (d) => { r.log.push(tag + ' native dialog: ' + d.message()); r.steps.push({ name: 'native dialog', message: d.message() }); d.dismiss(); });
    },
    screen: () => ctx.page.evaluate(() => window.chaserTerm ? window.chaserTerm.screen() : ''),
    waitScreen: (re, timeout = 30000) => ctx.page.waitForFunction(
      (src) => window.chaserTerm && new RegExp(src, 'm').test(window.chaserTerm.screen()), { timeout }, re.source),
  };
  try {
    ctx.page = await browser.newPage();
    ctx.watch(ctx.page, 'console');
    await ctx.page.setViewport({ width: 1280, height: 800 });
    await body(ctx);
  } catch (e) {
    r.error = e.stack || e.message;
    try { await ctx.shot('error'); } catch { /* */ }
    try { r.screen = await ctx.screen(); } catch { /* */ }
  } finally {
    await browser.close();
  }
  console.log(JSON.stringify(r));
}

// signIn signs in by typing the key and pressing Enter.
export async function signIn(ctx, url, key) {
  const { page } = ctx;
  await page.goto(url, { waitUntil: 'load' });
  await page.waitForSelector('#key');
  await page.type('#key', key);
  await page.keyboard.press('Enter');
  await page.waitForSelector('#sessions');
}
