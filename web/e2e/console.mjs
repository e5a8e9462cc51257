// Drives the web console in headless Chromium like a person: sign in (a
// wrong key first), create a sandbox, use its terminal (42 from
// `echo $((6*7))`, resize, a dropped connection), upload and download a
// file, open a forwarded port and check from the forwarded page that it
// cannot read the console's key, delete the sandbox, sign out. Screenshots
// of each page go to SHOT_DIR. On the Workspaces page: create a workspace,
// make it the default, delete it. With the admin key: create an account on
// the admin page and delete it. MAX_FILE is the server's --max-file-size in
// bytes: a file one byte larger must be refused before it is sent. Prints
// one JSON object with what it saw.
// Usage: node console.mjs CONSOLE_URL KEY ADMIN_KEY WORK_DIR SHOT_DIR MAX_FILE
import puppeteer from 'puppeteer-core';
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';

const [consoleURL, key, adminKey, work, shots, maxFileArg] = process.argv.slice(2);
const maxFile = Number(maxFileArg);
fs.mkdirSync(shots, { recursive: true });
const userDataDir = path.join(work, 'profile');
const downloads = path.join(work, 'downloads');
fs.mkdirSync(downloads, { recursive: true });

const r = { steps: [], log: [], csp: [], measure: {} };
const step = (name, data = {}) => r.steps.push({ name, ...data });

const browser = await puppeteer.launch({
  executablePath: '/usr/bin/chromium',
  headless: true,
  userDataDir,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
let page;
const shot = async (name, p = page) => { await p.screenshot({ path: path.join(shots, name + '.png') }); };
const watch = (p, tag) => {
  p.on('console', (m) => {
    const t = m.text();
    // The console's own pages must cause none (the forwarded app's framing
    // attempt is refused on purpose).
    if (tag === 'console' && /Content Security Policy/i.test(t)) r.csp.push(t);
    r.log.push(tag + ' ' + m.type() + ': ' + t);
  });
  p.on('pageerror', (e) => r.log.push(tag + ' page error: ' + e.message));
  p.on('dialog', (d) => d.accept());
};
const screen = () => page.evaluate(() => window.chaserTerm ? window.chaserTerm.screen() : '');
const waitScreen = (re, timeout = 30000) => page.waitForFunction(
  (src) => window.chaserTerm && new RegExp(src, 'm').test(window.chaserTerm.screen()), { timeout }, re.source);
const typeCmd = async (cmd) => { await page.keyboard.type(cmd); await page.keyboard.press('Enter'); };

try {
  page = await browser.newPage();
  watch(page, 'console');
  await page.setViewport({ width: 1280, height: 800 });
  const cdp = await page.createCDPSession();
  await cdp.send('Browser.setDownloadBehavior', { behavior: 'allow', downloadPath: downloads });

  // Sign in: a wrong key first.
  await page.goto(consoleURL, { waitUntil: 'load' });
  await page.waitForSelector('#key');
  await shot('01-signin');
  await page.type('#key', 'chaser_wrong_key');
  await page.click('#signin');
  await page.waitForFunction(() => /not accepted/.test(document.querySelector('#signin-msg')?.textContent ?? ''));
  step('wrong key', { message: await page.$eval('#signin-msg', (e) => e.textContent) });
  await shot('02-signin-wrong-key');
  await page.$eval('#key', (e) => { e.value = ''; });
  await page.type('#key', key);
  await page.click('#signin');
  await page.waitForSelector('#sessions');
  step('signed in', { stored: await page.evaluate(() => sessionStorage.getItem('chaser.key') !== null), url: page.url() });

  // Create a sandbox.
  await page.click('#create');
  const row = await page.waitForSelector('#sessions tr[data-session]', { timeout: 60000 });
  const id = await row.evaluate((e) => e.dataset.session);
  step('created', { id });
  await page.waitForFunction(() => /running/.test(document.querySelector('#sessions tr[data-session]')?.textContent ?? ''), { timeout: 60000 });
  await shot('03-sessions');

  // Terminal: from opening the page (navigation start of a reload: a real
  // page open, the key still in this tab) to the shell's prompt on the
  // screen, read in the page on every animation frame.
  await page.goto(consoleURL + '#/s/' + id + '/terminal', { waitUntil: 'load' });
  await page.reload({ waitUntil: 'load' });
  await page.waitForFunction(() => window.chaserTerm && /[#$] $/m.test(window.chaserTerm.screen()), { timeout: 30000, polling: 'raf' });
  r.measure.page_to_prompt_ms = Math.round(await page.evaluate(() => performance.now()));
  r.measure.page_to_first_output_ms = Math.round(await page.evaluate(() => window.chaserTerm.openedAt));
  await typeCmd('echo $((6*7))');
  await waitScreen(/^42$/);
  step('terminal 42', { screen: await screen() });
  await shot('04-terminal');

  // Keystroke echo, measured in the page: xterm's input (as a key press
  // gives it) → WebSocket → PTY echo → the character parsed onto the screen.
  r.measure.echo_ms = await page.evaluate(async () => {
    const t = window.chaserTerm.term, out = [];
    for (let i = 0; i < 60; i++) {
      const ch = String.fromCharCode(97 + (i % 26));
      const before = t.buffer.active.cursorX;
      const start = performance.now();
      await new Promise((res) => {
        const d = t.onWriteParsed(() => { if (t.buffer.active.cursorX !== before) { d.dispose(); res(); } });
        t.input(ch, true);
      });
      out.push(performance.now() - start);
    }
    t.input('\x15', true); // Ctrl-U: clear the line
    out.sort((a, b) => a - b);
    const q = (p) => Math.round(out[Math.min(out.length - 1, Math.ceil(p * out.length) - 1)] * 100) / 100;
    return { median: q(0.5), p95: q(0.95), max: q(1), n: out.length };
  });

  // The same from real key presses (Chromium's input events): from the
  // keydown reaching the page to the echoed character on the screen.
  await page.evaluate(() => {
    const t = window.chaserTerm.term;
    window.keyEcho = [];
    window.keyData = []; // keydown → xterm's onData (the browser's and xterm's share)
    document.addEventListener('keydown', (e) => {
      if (e.key.length !== 1 || e.ctrlKey) return;
      const start = performance.now(), before = t.buffer.active.cursorX;
      const dd = t.onData(() => { dd.dispose(); window.keyData.push(performance.now() - start); });
      const d = t.onWriteParsed(() => { if (t.buffer.active.cursorX !== before) { d.dispose(); window.keyEcho.push(performance.now() - start); } });
    }, true);
  });
  for (let i = 0; i < 60; i++) {
    await page.keyboard.press(String.fromCharCode(97 + (i % 26)));
    await page.waitForFunction((n) => window.keyEcho.length >= n, { timeout: 5000 }, i + 1);
  }
  await page.keyboard.down('Control');
  await page.keyboard.press('KeyU');
  await page.keyboard.up('Control');
  const quant = (xs) => {
    const out = [...xs].sort((a, b) => a - b);
    const q = (p) => Math.round(out[Math.min(out.length - 1, Math.ceil(p * out.length) - 1)] * 100) / 100;
    return { median: q(0.5), p95: q(0.95), max: q(1), n: out.length };
  };
  r.measure.key_echo_ms = quant(await page.evaluate(() => window.keyEcho));
  r.measure.key_to_data_ms = quant(await page.evaluate(() => window.keyData));

  // Resize: a narrow window; the shell must learn the new size.
  await page.setViewport({ width: 760, height: 700 });
  await page.waitForFunction(() => window.chaserTerm.term.cols < 90, { timeout: 10000 });
  const size = await page.evaluate(() => ({ cols: window.chaserTerm.term.cols, rows: window.chaserTerm.term.rows }));
  await new Promise((res) => setTimeout(res, 300));
  await typeCmd('stty size');
  await waitScreen(new RegExp(`^${size.rows} ${size.cols}$`));
  step('resized', size);
  await shot('05-terminal-narrow');
  await page.setViewport({ width: 1280, height: 800 });

  // A dropped connection reattaches and replays; the shell is the same.
  await typeCmd('X=kept-$((2+3))');
  await page.evaluate(() => window.chaserTerm.drop());
  await page.waitForFunction(() => document.querySelector('.termwrap')?.dataset.state === 'reconnecting', { timeout: 10000 });
  await page.waitForFunction(() => document.querySelector('.termwrap')?.dataset.state === 'connected', { timeout: 30000 });
  await typeCmd('echo $X');
  await waitScreen(/^kept-5$/);
  step('reconnected');

  await typeCmd('exit 7');
  await page.waitForFunction(() => document.querySelector('.termwrap')?.dataset.state === 'exited', { timeout: 20000 });
  step('exited', { state: await page.$eval('.tstate', (e) => e.textContent) });
  await shot('06-terminal-exited');

  // A new terminal starts an app for the forwarding step (a plain
  // http.server), left running.
  await page.click('.toolbar button:nth-of-type(3)');
  await page.waitForFunction(() => document.querySelector('.termwrap')?.dataset.state === 'connected', { timeout: 30000 });
  await waitScreen(/[#$] $/);
  await typeCmd('mkdir -p /tmp/site && echo forwarded-app > /tmp/site/index.html && cd /tmp/site && python3 -m http.server 8000');
  await waitScreen(/Serving HTTP/);

  // Files: upload (and one too large), see it listed, download, compare.
  await page.goto(consoleURL + '#/s/' + id + '/files', { waitUntil: 'load' });
  await page.waitForSelector('#files tbody');
  const up = path.join(work, 'hello-upload.bin');
  const content = crypto.randomBytes(200_000);
  fs.writeFileSync(up, content);
  const big = path.join(work, 'too-big.bin');
  fs.writeFileSync(big, Buffer.alloc(maxFile + 1));
  const input = await page.$('#upload');
  await input.uploadFile(big);
  await page.waitForFunction(() => /at most/.test(document.querySelector('#files-msg')?.textContent ?? ''));
  step('too big', { message: await page.$eval('#files-msg', (e) => e.textContent), label: await page.$eval('label[for="upload"]', (e) => e.textContent) });
  await input.uploadFile(up);
  await page.waitForSelector('#files tr[data-file="hello-upload.bin"]', { timeout: 30000 });
  step('uploaded', { message: await page.$eval('#files-msg', (e) => e.textContent) });
  await shot('07-files');
  await page.click('#files tr[data-file="hello-upload.bin"] button[aria-label^="Download"]');
  const got = path.join(downloads, 'hello-upload.bin');
  for (let i = 0; i < 100 && !fs.existsSync(got); i++) await new Promise((res) => setTimeout(res, 100));
  await new Promise((res) => setTimeout(res, 300));
  step('downloaded', { same: fs.existsSync(got) && Buffer.compare(fs.readFileSync(got), content) === 0 });

  // Ports: open 8000 in a new tab with a ticket.
  await page.goto(consoleURL + '#/s/' + id + '/ports', { waitUntil: 'load' });
  await page.waitForSelector('#port');
  await page.waitForSelector('#ports tr[data-port="8000"]', { timeout: 15000 }).catch(() => {});
  step('ports listed', { rows: await page.$$eval('#ports tbody tr', (rs) => rs.map((x) => x.textContent)) });
  await page.type('#port', '8000');
  const opened = browser.waitForTarget((t) => t.url().includes('/forward/8000/'), { timeout: 20000 });
  await page.click('#open-port');
  const app = await (await opened).page();
  watch(app, 'app');
  await app.waitForFunction(() => document.body && document.body.innerText.includes('forwarded-app'), { timeout: 20000 });
  await shot('08-forwarded-app', app);
  // What a script of the forwarded app can see: run in its page, origin
  // and all.
  const consoleOrigin = new URL(consoleURL).origin;
  const seen = await app.evaluate(async (consoleOrigin) => {
    const o = { origin: location.origin, url: location.href, storage: sessionStorage.length, key: sessionStorage.getItem('chaser.key'),
      local: localStorage.length, opener: window.opener !== null };
    try {
      const res = await fetch(consoleOrigin + '/v1/account', { credentials: 'include' });
      o.fetch = res.status;
    } catch (e) { o.fetch = 'blocked: ' + e.message; }
    o.frame = await new Promise((res) => {
      const f = document.createElement('iframe');
      f.src = consoleOrigin + '/';
      f.onload = () => { try { res('read: ' + f.contentWindow.sessionStorage.getItem('chaser.key')); } catch (e) { res('denied: ' + e.name); } };
      document.body.append(f);
      setTimeout(() => res('no load'), 5000);
    });
    return o;
  }, consoleOrigin);
  step('forwarded page', seen);
  step('console keeps key', { stored: await page.evaluate(() => sessionStorage.getItem('chaser.key') !== null), origin: await page.evaluate(() => location.origin) });
  await app.close();

  await page.goto(consoleURL + '#/s/' + id + '/info', { waitUntil: 'load' });
  await page.waitForSelector('#selftest table', { timeout: 30000 });
  await shot('09-self-test');

  // Delete the sandbox (the confirmation is accepted), then sign out.
  await page.goto(consoleURL + '#/sessions', { waitUntil: 'load' });
  await page.waitForSelector(`#sessions tr[data-session="${id}"]`);
  await page.click(`#sessions tr[data-session="${id}"] button.danger`);
  await page.click('#ask-yes');
  await page.waitForFunction((id) => !document.querySelector(`#sessions tr[data-session="${id}"]`), { timeout: 30000 }, id);
  step('deleted', { id });
  await shot('10-sessions-after-delete');

  await page.goto(consoleURL + '#/workspaces', { waitUntil: 'load' });
  await page.waitForSelector('main h1');
  await page.type('#ws-name', 'e2e-ws');
  await page.click('#ws-name ~ button[type="submit"]');
  const wsRow = 'tr[data-workspace="e2e-ws"]';
  await page.waitForSelector(wsRow, { timeout: 60000 });
  step('workspace created');
  await page.click(wsRow + ' td:nth-child(5) button');
  await page.waitForFunction((sel) => document.querySelector(sel + ' td:nth-child(5)')?.textContent === 'default', { timeout: 30000 }, wsRow);
  step('workspace default');
  await shot('11-workspaces');
  await page.click(wsRow + ' button.danger');
  await page.click('#ask-yes');
  await page.waitForFunction((sel) => !document.querySelector(sel), { timeout: 60000 }, wsRow);
  step('workspace deleted');

  await page.click('#signout');
  await page.waitForSelector('#key');
  step('signed out', { stored: await page.evaluate(() => sessionStorage.getItem('chaser.key')) });

  // The admin pages, with the admin key.
  await page.type('#key', adminKey);
  await page.click('#signin');
  await page.waitForSelector('#sessions');
  await page.goto(consoleURL + '#/admin', { waitUntil: 'load' });
  await page.waitForSelector('main table tbody tr', { timeout: 10000 }).catch(() => {});
  step('admin', { accounts: await page.$$eval('main table:first-of-type tbody tr', (rs) => rs.length) });
  await page.type('#acct-name', 'e2e-doomed');
  await page.click('#acct-tier ~ button[type="submit"]');
  const acctRow = 'tr[data-account="e2e-doomed"]';
  await page.waitForSelector(acctRow, { timeout: 30000 });
  const doomedKey = await page.$eval('main p.msg code', (e) => e.textContent);
  const doomedID = await page.$eval(acctRow + ' td:nth-child(5)', (e) => e.textContent);
  step('account created', { id: doomedID, key: doomedKey });
  await shot('12-admin');
  await page.click(acctRow + ' button.danger');
  await page.click('#ask-yes');
  await page.waitForFunction((sel) => !document.querySelector(sel), { timeout: 60000 }, acctRow);
  step('account deleted', { id: doomedID, message: await page.$$eval('main p.msg', (es) => es.map((e) => e.textContent).join(' ')) });
  await page.setViewport({ width: 420, height: 800 });
  await page.goto(consoleURL + '#/sessions', { waitUntil: 'load' });
  await page.waitForSelector('#sessions');
  await shot('13-sessions-narrow');
} catch (e) {
  r.error = e.message;
  try { await shot('error'); } catch { /* */ }
  try { r.screen = await screen(); } catch { /* */ }
} finally {
  await browser.close();
}
console.log(JSON.stringify(r));
