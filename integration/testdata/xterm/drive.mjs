// Drives index.html in headless Chromium the way a person uses it: waits
// for the prompt, types a command on the keyboard, reads the screen back,
// types `exit 3` and reports how the WebSocket closed.
// Usage: node drive.mjs PAGE_URL USER_DATA_DIR; prints {"screen","closed"}.
import puppeteer from 'puppeteer-core';

const [pageURL, userDataDir] = process.argv.slice(2);
const browser = await puppeteer.launch({
  executablePath: '/usr/bin/chromium',
  headless: true,
  userDataDir,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const result = { screen: '', closed: null, log: [] };
try {
  const page = await browser.newPage();
  page.on('console', (m) => result.log.push(m.text()));
  page.on('pageerror', (e) => result.log.push('page error: ' + e.message));
  await page.goto(pageURL);
  await page.waitForFunction(() => window.wsOpened || window.wsClosed, { timeout: 30000 });
  const screen = () => page.evaluate(() => window.screenText());
  await page.waitForFunction(() => window.wsClosed || window.screenText().includes('#'), { timeout: 30000 });
  await page.keyboard.type('echo $((6*7)) in-the-browser');
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => window.wsClosed || window.screenText().includes('42 in-the-browser\n'), { timeout: 30000 });
  await page.keyboard.type('exit 3');
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => window.wsClosed, { timeout: 30000 });
  result.screen = await screen();
  result.closed = await page.evaluate(() => window.wsClosed);
} catch (e) {
  result.log.push('driver: ' + e.message);
  try { result.screen = await (await browser.pages())[1].evaluate(() => window.screenText()); } catch {}
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
