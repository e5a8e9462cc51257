// Keyboard only, in headless Chromium against a real server: no mouse
// event at all. Sign in (type the key, Enter); create a sandbox (Tab to
// Create, Enter); open its terminal from the list; type a command and use
// Tab completion in the shell; leave the terminal with Esc then Shift+Tab;
// files (make a directory), ports (open a forwarded port; the focus
// survives the list's refresh); delete the sandbox through the
// confirmation (Escape cancels first and gives the focus back); sign out.
// Every control the focus lands on must show it (:focus-visible with an
// outline, or the terminal's frame). Usage:
// node keyboard.mjs CONSOLE_URL KEY WORK_DIR SHOT_DIR
import { run, sleep } from './lib.mjs';

const [url, key, work, shots] = process.argv.slice(2);

await run(work, shots, async (ctx) => {
  const { page, step, shot, waitScreen, browser } = ctx;
  const kb = page.keyboard;
  const unseen = []; // focus stops with no visible indicator
  // focused describes the focused element and whether its focus shows.
  const focused = () => page.evaluate(() => {
    const a = document.activeElement;
    if (!a || a === document.body) return { tag: 'body', visible: false };
    const shows = (el) => { const cs = getComputedStyle(el); return cs.outlineStyle !== 'none' && parseFloat(cs.outlineWidth) > 0; };
    const term = a.closest('.term');
    return {
      tag: a.tagName.toLowerCase(), id: a.id, label: a.getAttribute('aria-label') || '', text: (a.textContent || '').trim().slice(0, 40),
      href: a.getAttribute('href') || '', term: !!term, dialog: !!a.closest('dialog'),
      visible: term ? shows(term) : a.matches(':focus-visible') && shows(a),
    };
  });
  const press = async (k, shift = false) => {
    if (shift) await kb.down('Shift');
    await kb.press(k);
    if (shift) await kb.up('Shift');
  };
  // tabTo presses Tab (or Shift+Tab) until want(focused) holds.
  const tabTo = async (want, what, shift = false, max = 40) => {
    for (let i = 0; i < max; i++) {
      await press('Tab', shift);
      const f = await focused();
      if (f.tag !== 'body' && !f.visible && f.tag !== 'h1') unseen.push(f);
      if (want(f)) return f;
    }
    throw new Error(`${max} ${shift ? 'Shift+' : ''}Tabs did not reach ${what}; focus is on ${JSON.stringify(await focused())}`);
  };

  await page.goto(url, { waitUntil: 'load' });
  await page.waitForSelector('#key');
  step('start focus', await focused());
  await kb.type(key);
  await kb.press('Enter');
  await page.waitForSelector('#sessions');
  step('signed in', await focused());

  await tabTo((f) => f.id === 'create', 'Create');
  await kb.press('Enter');
  const row = await page.waitForSelector('#sessions tr[data-session]', { timeout: 60000 });
  const id = await row.evaluate((e) => e.dataset.session);
  await page.waitForFunction(() => /running/.test(document.querySelector('#sessions tr[data-session]')?.textContent ?? ''), { timeout: 60000 });
  step('created', { id });

  // Into the terminal by its link in the list.
  await tabTo((f) => f.href === `#/s/${id}/terminal`, 'the session link');
  await kb.press('Enter');
  await page.waitForFunction(() => window.chaserTerm, { timeout: 10000 });
  await waitScreen(/[#$] $/);
  step('terminal focus', await focused());
  await kb.type('echo kb-$((6*7))');
  await kb.press('Enter');
  await waitScreen(/^kb-42$/);
  // Tab belongs to the shell: completion of a command name.
  await kb.type('ech');
  await kb.press('Tab');
  await sleep(300);
  await kb.type(' -n tab; echo -completed');
  await kb.press('Enter');
  await waitScreen(/^tab-completed$/);
  step('tab completes', { focus: await focused() });
  // A server for the ports step, left running in the background.
  await kb.type('mkdir -p /tmp/kb && echo kb-app > /tmp/kb/index.html && (cd /tmp/kb && python3 -m http.server 8000 >/dev/null 2>&1 &)');
  await kb.press('Enter');
  await shot('kb-01-terminal');
  // Esc, then Shift+Tab, leaves the terminal for the toolbar.
  await kb.press('Escape');
  await press('Tab', true);
  const out = await focused();
  if (!out.visible) unseen.push(out);
  step('left terminal', out);

  // Files: the tab link, then make a directory.
  await tabTo((f) => f.href === `#/s/${id}/files`, 'the files tab', true);
  await kb.press('Enter');
  await page.waitForSelector('#files tbody');
  await tabTo((f) => f.id === 'mkdir', 'the new directory field');
  await kb.type('kbdir');
  await kb.press('Enter');
  await page.waitForSelector('#files tr[data-file="kbdir"]', { timeout: 20000 });
  step('mkdir', { focus: await focused() });
  await shot('kb-02-files');

  // Ports: wait for 8000 to be listed, Tab to its Open button, stay there
  // through a refresh of the list, Enter opens the forward in a new tab.
  await tabTo((f) => f.href === `#/s/${id}/ports`, 'the ports tab', true);
  await kb.press('Enter');
  await page.waitForSelector('#ports tr[data-port="8000"]', { timeout: 20000 });
  await tabTo((f) => f.label === 'Open port 8000', 'Open port 8000');
  await sleep(3500); // the list refreshes every 3 s
  const afterRefresh = await focused();
  step('ports refresh keeps focus', afterRefresh);
  const opened = browser.waitForTarget((t) => t.url().includes('/forward/8000/'), { timeout: 20000 });
  await kb.press('Enter');
  const app = await (await opened).page();
  await app.waitForFunction(() => document.body && document.body.innerText.includes('kb-app'), { timeout: 20000 });
  step('port opened', { url: app.url() });
  await app.close();
  await page.bringToFront();
  await shot('kb-03-ports');

  // Back to the list by the main nav; delete with the confirmation.
  await tabTo((f) => f.href === '#/sessions', 'the Sessions link', true);
  await kb.press('Enter');
  await page.waitForSelector(`#sessions tr[data-session="${id}"]`);
  await tabTo((f) => f.label === `Delete ${id}`, 'the Delete button');
  await sleep(3500); // a refresh of the list must not lose the focus
  step('list refresh keeps focus', await focused());
  await kb.press('Enter');
  await page.waitForSelector('dialog.ask[open]');
  const first = await focused();
  await press('Tab');
  const second = await focused();
  await press('Tab');
  const third = await focused();
  await press('Tab', true);
  const back = await focused();
  step('dialog focus', { first, second, third, back });
  await shot('kb-04-confirm');
  await kb.press('Escape');
  await page.waitForFunction(() => !document.querySelector('dialog.ask'));
  step('escape cancels', { focus: await focused(), row: await page.$(`#sessions tr[data-session="${id}"]`) !== null });
  await kb.press('Enter');
  await page.waitForSelector('dialog.ask[open]');
  await press('Tab');
  await kb.press('Space');
  await page.waitForFunction((id) => !document.querySelector(`#sessions tr[data-session="${id}"]`), { timeout: 30000 }, id);
  step('deleted', { id, focus: await focused() });

  await tabTo((f) => f.id === 'signout', 'Sign out', true);
  await kb.press('Enter');
  await page.waitForSelector('#key');
  step('signed out', { stored: await page.evaluate(() => sessionStorage.getItem('chaser.key')), focus: await focused() });
  step('unseen focus', { stops: unseen });
});
