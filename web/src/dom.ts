// A tiny DOM builder: h('tag.class', {attrs, on…: handlers}, children…).

type Child = Node | string | number | null | undefined | false | Child[];
type Attrs = Record<string, any>;

export function h<K extends keyof HTMLElementTagNameMap>(sel: K | string, attrs: Attrs = {}, ...kids: Child[]): HTMLElementTagNameMap[K] {
  const [tag, ...cls] = sel.split('.');
  const el = document.createElement(tag || 'div') as HTMLElementTagNameMap[K];
  if (cls.length) el.className = cls.join(' ');
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2).toLowerCase(), v);
    else if (k === 'class') el.className += (el.className ? ' ' : '') + v;
    else if (k in el && typeof v !== 'string') (el as any)[k] = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, kids);
  return el;
}

function append(el: Node, kids: Child[]) {
  for (const k of kids) {
    if (k === null || k === undefined || k === false) continue;
    if (Array.isArray(k)) append(el, k);
    else el.appendChild(typeof k === 'object' ? k : document.createTextNode(String(k)));
  }
}

export function clear(el: Element, ...kids: Child[]) {
  el.replaceChildren();
  append(el, kids);
}

export function fmtBytes(n: number): string {
  const u = ['B', 'KB', 'MB', 'GB'];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n) + ' ' + u[i];
}

export function ago(iso: string): string {
  const s = Math.round((Date.now() - Date.parse(iso)) / 1000);
  return dur(s) + ' ago';
}

export function until(iso: string): string {
  const s = Math.round((Date.parse(iso) - Date.now()) / 1000);
  return s <= 0 ? 'now' : 'in ' + dur(s);
}

function dur(s: number): string {
  s = Math.abs(s);
  if (s < 60) return s + 's';
  if (s < 3600) return Math.floor(s / 60) + 'm';
  if (s < 86400) return Math.floor(s / 3600) + 'h ' + Math.floor((s % 3600) / 60) + 'm';
  return Math.floor(s / 86400) + 'd';
}

// status shows a message in a live region (errors in red).
export function say(el: Element, msg: string, kind: 'error' | 'ok' | '' = '') {
  el.textContent = msg;
  el.className = 'msg ' + kind;
}

// ask shows a modal confirmation (<dialog>, so the rest of the page is
// inert and Tab stays inside it): Escape or Cancel answers false, the
// danger button true. Focus starts on Cancel, so a stray Enter deletes
// nothing, and goes back to the control that opened it.
export function ask(message: string, yes = 'Delete'): Promise<boolean> {
  const back = document.activeElement as HTMLElement | null;
  return new Promise((resolve) => {
    const cancel = h('button', { type: 'button', value: 'no', id: 'ask-cancel' }, 'Cancel');
    const ok = h('button.danger', { type: 'button', value: 'yes', id: 'ask-yes' }, yes);
    const d = h('dialog.ask', { 'aria-labelledby': 'ask-msg' },
      h('p', { id: 'ask-msg' }, message),
      h('div.row.end', {}, cancel, ok)) as HTMLDialogElement;
    let answer = false;
    // Tab and Shift+Tab cycle between the two buttons: showModal makes the
    // page inert, but would let Tab leave for the browser's own controls.
    d.addEventListener('keydown', (e) => {
      if (e.key !== 'Tab') return;
      e.preventDefault();
      (document.activeElement === ok ? cancel : ok).focus();
    });
    cancel.onclick = () => d.close();
    ok.onclick = () => { answer = true; d.close(); };
    d.addEventListener('close', () => {
      d.remove();
      // A list may have re-rendered meanwhile: the same control by its label.
      const label = back?.getAttribute('aria-label');
      const again = back?.isConnected ? back : label ? document.querySelector<HTMLElement>(`[aria-label="${CSS.escape(label)}"]`) : null;
      again?.focus();
      resolve(answer);
    });
    document.body.append(d);
    d.showModal();
    cancel.focus();
  });
}

// keepFocus re-renders el (render replaces its children) and, when the
// focus was inside it, puts it back on the control in the same place: the
// same data-key row and the same control of that row. Lists that refresh
// themselves would otherwise drop a keyboard user's focus to the page.
export function keepFocus(el: Element, render: () => void) {
  const a = document.activeElement as HTMLElement | null;
  if (!a || !el.contains(a)) { render(); return; }
  const row = a.closest('[data-key]') as HTMLElement | null;
  const key = row?.dataset.key;
  const idx = row ? Array.from(row.querySelectorAll('a,button,input,select')).indexOf(a) : -1;
  render();
  if (key === undefined) return;
  const again = Array.from(el.querySelectorAll<HTMLElement>('[data-key]')).find((r) => r.dataset.key === key);
  const c = again?.querySelectorAll<HTMLElement>('a,button,input,select')[idx];
  const to = c ?? again?.querySelector<HTMLElement>('a,button,input,select');
  // The row is gone (deleted): the page's heading, not the document's start.
  if (to) to.focus(); else document.querySelector<HTMLElement>('main h1')?.focus();
}
