// Every page of the console at 1280×800 and at a phone's 390×844: a
// screenshot of each, and whether the page scrolls sideways (it must not:
// wide tables scroll inside their own box). Usage:
// node layout.mjs CONSOLE_URL ADMIN_KEY SESSION WORK_DIR SHOT_DIR
import { run, signIn, sleep } from './lib.mjs';

const [url, key, id, work, shots] = process.argv.slice(2);

const pages = [
  ['sessions', '#/sessions', '#sessions tr[data-session]'],
  ['terminal', `#/s/${id}/terminal`, '.termwrap[data-state="connected"]'],
  ['files', `#/s/${id}/files`, '#files tr[data-file]'],
  ['ports', `#/s/${id}/ports`, '#ports tbody tr'],
  ['self-test', `#/s/${id}/info`, '#selftest table'],
  ['workspaces', '#/workspaces', 'main table'],
  ['admin', '#/admin', '#images tbody tr'],
];

await run(work, shots, async (ctx) => {
  const { page, step, shot } = ctx;
  const measure = async (name) => {
    const m = await page.evaluate(() => {
      const w = window.innerWidth;
      // What sticks out, to say where to look.
      const wide = [...document.querySelectorAll('body *')].filter((e) => {
        const r = e.getBoundingClientRect();
        return r.width && r.right > w + 1 && !e.closest('.scroll');
      }).slice(0, 5).map((e) => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') + (e.className && typeof e.className === 'string' ? '.' + e.className.split(' ').join('.') : '') + ' ' + Math.round(e.getBoundingClientRect().right));
      return { scrollWidth: document.documentElement.scrollWidth, innerWidth: w, wide };
    });
    step('layout', { page: name, ...m });
  };
  for (const [w, h, tag] of [[1280, 800, 'wide'], [390, 844, 'narrow']]) {
    await page.setViewport({ width: w, height: h });
    await page.goto(url, { waitUntil: 'load' });
    await page.evaluate(() => sessionStorage.clear());
    await page.reload({ waitUntil: 'load' });
    await page.waitForSelector('#key');
    await measure(`signin ${tag}`);
    await shot(`${tag}-signin`);
    await signIn(ctx, url, key);
    for (const [name, hash, ready] of pages) {
      await page.goto(url + hash, { waitUntil: 'load' });
      await page.waitForSelector(ready, { timeout: 30000 });
      await sleep(200);
      await measure(`${name} ${tag}`);
      await shot(`${tag}-${name}`);
    }
    // The confirmation dialog over the sessions list.
    await page.goto(url + '#/sessions', { waitUntil: 'load' });
    await page.waitForSelector('#sessions tr[data-session] button.danger');
    await page.click('#sessions tr[data-session] button.danger');
    await page.waitForSelector('dialog.ask[open]');
    await measure(`confirm ${tag}`);
    await shot(`${tag}-confirm`);
    await page.keyboard.press('Escape');
    await page.click('#signout');
  }
});
