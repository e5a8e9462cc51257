// Copy and paste in the browser terminal, in headless Chromium with the
// clipboard permissions granted: a word of the shell's output selected by
// a double click and copied with Ctrl+Shift+C is on the clipboard; text
// put on the clipboard and pasted with Ctrl+Shift+V (the browser's own
// "paste as plain text", as a real browser runs it for that shortcut)
// reaches the shell once; the Paste button pastes through the Clipboard
// API. Usage: node clipboard.mjs CONSOLE_URL KEY SESSION WORK_DIR SHOT_DIR
import { run, signIn, sleep } from './lib.mjs';

const [url, key, id, work, shots] = process.argv.slice(2);

await run(work, shots, async (ctx) => {
  const { page, step, shot, waitScreen, screen, browser } = ctx;
  await browser.defaultBrowserContext().overridePermissions(new URL(url).origin, ['clipboard-read', 'clipboard-write', 'clipboard-sanitized-write']);
  await signIn(ctx, url, key);
  await page.goto(url + '#/s/' + id + '/terminal', { waitUntil: 'load' });
  await page.waitForFunction(() => window.chaserTerm, { timeout: 10000 });
  await waitScreen(/[#$] $/);
  await page.keyboard.type('clear; echo copy-$((6*7))-me');
  await page.keyboard.press('Enter');
  await waitScreen(/^copy-42-me$/);

  // Double-click the word on the screen (cell coordinates from the
  // terminal's size), then Ctrl+Shift+C.
  const at = await page.evaluate(() => {
    const t = window.chaserTerm.term, b = t.buffer.active;
    let row = -1;
    for (let i = 0; i < t.rows; i++) if (b.getLine(b.viewportY + i)?.translateToString(true) === 'copy-42-me') row = i;
    const box = document.querySelector('.term .xterm-screen').getBoundingClientRect();
    return { x: box.left + (box.width / t.cols) * 4.5, y: box.top + (box.height / t.rows) * (row + 0.5), row };
  });
  await page.mouse.click(at.x, at.y, { clickCount: 2 });
  const selection = await page.evaluate(() => window.chaserTerm.term.getSelection());
  await page.evaluate(() => navigator.clipboard.writeText('before'));
  await page.keyboard.down('Control');
  await page.keyboard.down('Shift');
  await page.keyboard.press('KeyC');
  await page.keyboard.up('Shift');
  await page.keyboard.up('Control');
  await sleep(300);
  const copied = await page.evaluate(() => navigator.clipboard.readText());
  step('copied', { selection, clipboard: copied, row: at.row, state: await page.$eval('.tstate', (e) => e.textContent) });
  await shot('clip-01-selected');

  // Ctrl+Shift+V: the browser's paste, as a real browser runs it for the
  // shortcut (the page must not paste a second time itself).
  await page.evaluate(() => navigator.clipboard.writeText('echo pasted-$((3*4))'));
  await page.keyboard.down('Control');
  await page.keyboard.down('Shift');
  await page.keyboard.down('KeyV', { commands: ['PasteAndMatchStyle'] });
  await page.keyboard.up('KeyV');
  await page.keyboard.up('Shift');
  await page.keyboard.up('Control');
  await sleep(300);
  const line = await page.evaluate(() => {
    const b = window.chaserTerm.term.buffer.active;
    return b.getLine(b.baseY + b.cursorY)?.translateToString(true);
  });
  await page.keyboard.press('Enter');
  await waitScreen(/^pasted-12$/);
  step('pasted', { line });

  // The Paste button: the Clipboard API.
  await page.evaluate(() => navigator.clipboard.writeText('echo button-$((5*5))'));
  await page.click('.toolbar button:nth-of-type(2)');
  await sleep(300);
  await page.keyboard.press('Enter');
  await waitScreen(/^button-25$/);
  step('paste button', { screen: await screen() });
  await shot('clip-02-pasted');
});
