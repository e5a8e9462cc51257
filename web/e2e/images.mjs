// The admin page's images, in headless Chromium against a real server and
// a registry the test started: the list is paged (?limit=2 here, "Show
// more" for the rest); pulling shows a busy state and the server's
// progress; a pull from an unreachable registry shows the server's error;
// deleting asks first (Cancel keeps the image). A non-admin has no Admin
// link and, opening #/admin anyway, sees the server's 403.
// Usage: node images.mjs CONSOLE_URL ADMIN_KEY USER_KEY REFS_JSON BAD_REF WORK_DIR SHOT_DIR
import { run, signIn, sleep } from './lib.mjs';

const [url, adminKey, userKey, refsJSON, badRef, work, shots] = process.argv.slice(2);
const refs = JSON.parse(refsJSON);

await run(work, shots, async (ctx) => {
  const { page, step, shot } = ctx;
  await signIn(ctx, url, adminKey);
  step('admin link', { shown: await page.$('nav a[href="#/admin"]') !== null });
  await page.goto(url + '#/admin?limit=2', { waitUntil: 'load' });
  await page.waitForSelector('#image-ref');
  // Everything the images status line and the pull form go through.
  await page.evaluate(() => {
    window.seen = [];
    const m = document.querySelector('#images-msg'), f = document.querySelector('#image-ref').form;
    new MutationObserver(() => window.seen.push('msg: ' + m.textContent)).observe(m, { childList: true, characterData: true, subtree: true });
    new MutationObserver(() => window.seen.push('busy: ' + f.getAttribute('aria-busy') + ' ' + document.querySelector('#image-pull').textContent)).observe(f, { attributes: true, attributeFilter: ['aria-busy'] });
  });
  const pull = async (ref) => {
    await page.$eval('#image-ref', (e) => { e.value = ''; });
    await page.type('#image-ref', ref);
    await page.click('#image-pull');
    try {
      await page.waitForFunction(() => document.querySelector('#image-ref').form.getAttribute('aria-busy') === null &&
        /Pulled|Could not/.test(document.querySelector('#images-msg').textContent), { timeout: 60000 });
    } catch (e) {
      // Say where it stuck: never submitted (the field empty, no busy
      // state) or submitted and waiting for the server.
      step('pull stuck', { ref, ...(await page.evaluate(() => ({
        value: document.querySelector('#image-ref')?.value, busy: document.querySelector('#image-ref')?.form.getAttribute('aria-busy'),
        msg: document.querySelector('#images-msg')?.textContent, focus: document.activeElement?.id || document.activeElement?.tagName,
        hash: location.hash, seen: window.seen,
      }))) });
      throw e;
    }
    return page.$eval('#images-msg', (e) => ({ text: e.textContent, cls: e.className }));
  };
  for (const ref of refs) step('pulled', { ref, ...(await pull(ref)) });
  step('pull trace', { seen: await page.evaluate(() => window.seen) });
  await page.waitForFunction(() => document.querySelectorAll('#images tr[data-image]').length === 2, { timeout: 10000 });
  step('first page', { rows: await page.$$eval('#images tr[data-image]', (rs) => rs.map((x) => x.dataset.image)), more: await page.$eval('#images-more', (e) => !e.hidden) });
  await shot('images-01-list');
  await page.click('#images-more');
  await page.waitForFunction((n) => document.querySelectorAll('#images tr[data-image]').length === n, { timeout: 10000 }, refs.length);
  step('all pages', { rows: await page.$$eval('#images tr[data-image]', (rs) => rs.map((x) => x.dataset.image)), more: await page.$eval('#images-more', (e) => !e.hidden) });

  step('pull unreachable', { ref: badRef, ...(await pull(badRef)) });
  await shot('images-02-pull-error');

  // Delete: Cancel keeps it, then Delete removes it.
  const del = `#images tr[data-image="${refs[0]}"] button.danger`;
  await page.click(del);
  await page.waitForSelector('dialog.ask[open]');
  step('confirm shown', { text: await page.$eval('dialog.ask[open]', (e) => e.textContent) });
  await shot('images-03-confirm');
  await page.click('#ask-cancel');
  await page.waitForFunction(() => !document.querySelector('dialog.ask'));
  await sleep(300);
  step('cancelled', { still: await page.$(`#images tr[data-image="${refs[0]}"]`) !== null });
  await page.click(del);
  await page.waitForSelector('dialog.ask[open]');
  await page.click('#ask-yes');
  await page.waitForFunction((ref) => !document.querySelector(`#images tr[data-image="${ref}"]`), { timeout: 30000 }, refs[0]);
  step('deleted', { ref: refs[0], message: await page.$eval('#images-msg', (e) => e.textContent) });

  // A non-admin: no link, and the page says why.
  await page.click('#signout');
  await signIn(ctx, url, userKey);
  step('user admin link', { shown: await page.$('nav a[href="#/admin"]') !== null });
  await page.goto(url + '#/admin', { waitUntil: 'load' });
  await page.waitForSelector('#admin-denied');
  step('user denied', { text: await page.$eval('#admin-denied', (e) => e.textContent), pull: await page.$('#image-ref') !== null, del: await page.$('#images button.danger') !== null });
  await shot('images-04-non-admin');
});
