// The console behind a TLS proxy on a port of its own, as
// https://console.DOMAIN:PORT/ (Chromium maps *.DOMAIN to 127.0.0.1 and
// accepts the test's certificate): sign in, the terminal works through
// the proxy (its WebSocket too), and a forwarded port opens on the
// proxy's origin — https, the proxy's port — not on the API listener's.
// Usage: node proxy.mjs CONSOLE_URL KEY SESSION DOMAIN WORK_DIR SHOT_DIR
import { run, signIn } from './lib.mjs';

const [url, key, id, domain, work, shots] = process.argv.slice(2);

await run(work, shots, async (ctx) => {
  const { page, step, shot, waitScreen, browser } = ctx;
  await signIn(ctx, url, key);
  step('console.json', await page.evaluate(() => fetch('/console.json').then((r) => r.json())));
  await page.goto(url + '#/s/' + id + '/terminal', { waitUntil: 'load' });
  await page.waitForFunction(() => window.chaserTerm, { timeout: 10000 });
  await waitScreen(/[#$] $/);
  await page.keyboard.type('mkdir -p /tmp/px && echo proxied-app > /tmp/px/index.html && cd /tmp/px && python3 -m http.server 8000');
  await page.keyboard.press('Enter');
  await waitScreen(/Serving HTTP/);
  step('terminal through the proxy');
  await page.goto(url + '#/s/' + id + '/ports', { waitUntil: 'load' });
  await page.waitForSelector('#port');
  await page.type('#port', '8000');
  const opened = browser.waitForTarget((t) => t.url().includes('/forward/8000/'), { timeout: 20000 });
  await page.click('#open-port');
  const target = await opened;
  const app = await target.page();
  ctx.watch(app, 'app');
  let text = '';
  try {
    await app.waitForFunction(() => document.body && document.body.innerText.includes('proxied-app'), { timeout: 15000 });
    text = await app.evaluate(() => document.body.innerText);
  } catch (e) { text = 'not loaded: ' + e.message; }
  step('forward opened', { url: app.url(), text });
  await shot('proxy-01-forwarded-app', app);
});
