// Chaser's web console: sign in with an API key, then sessions (with a
// terminal, files, ports and the self-test), workspaces and, for admins,
// accounts and images. Hash routes keep it one static page.
import './style.css';
import * as api from './api';
import { h, clear, say, fmtBytes, ago, until, ask, keepFocus } from './dom';
import { TermView } from './terminal';
import { filesView } from './files';

// What the page cannot know by itself: where forwards are served and the
// server's per-file limit (--max-file-size; 413 beyond).
const config: Promise<{ forward_origin?: string; max_file_size?: number }> =
  fetch('/console.json').then((r) => r.json()).catch(() => ({}));
const DEFAULT_MAX_UPLOAD = 16 << 20; // the server's default, if /console.json did not say

type Account = { id: string; name: string; tier: string; admin: boolean };
let me: Account | null = null;
let forwardOrigin = '';
let cleanup: (() => void)[] = [];

const app = document.getElementById('app')!;

api.setOnUnauthorized(() => { signOut('Your API key is no longer accepted: sign in again.'); });

function signOut(msg = '') {
  api.clearKey();
  me = null;
  location.hash = '#/signin';
  if (msg) sessionStorage.setItem('chaser.msg', msg);
  route();
}

function nav(): HTMLElement {
  const link = (href: string, text: string) =>
    h('a', { href, 'aria-current': location.hash.startsWith(href) ? 'page' : undefined }, text);
  return h('header.top', {},
    h('strong.brand', {}, 'Chaser'),
    h('nav', { 'aria-label': 'main' },
      link('#/sessions', 'Sessions'),
      me?.tier === 'paid' || me?.admin ? link('#/workspaces', 'Workspaces') : null,
      me?.admin ? link('#/admin', 'Admin') : null),
    h('span.who', {}, me ? `${me.name} (${me.tier}${me.admin ? ', admin' : ''})` : ''),
    h('button', { type: 'button', id: 'signout', onclick: () => signOut() }, 'Sign out'));
}

// page shows a page and moves the focus to its heading (tabindex -1), so
// after a route change a keyboard user continues from the top of the new
// content rather than from the document's start; a page that focuses a
// control itself (the terminal) overrides it afterwards.
function page(title: string, ...body: (Node | null)[]) {
  document.title = title + ' · Chaser';
  const h1 = h('h1', { tabindex: '-1' }, title);
  clear(app, nav(), h('main', { id: 'main' }, h1, ...body));
  h1.focus({ preventScroll: true });
}

// ---- sign in

function signInPage() {
  document.title = 'Sign in · Chaser';
  const msg = h('p.msg', { role: 'alert', id: 'signin-msg' });
  const stored = sessionStorage.getItem('chaser.msg');
  if (stored) { say(msg, stored, 'error'); sessionStorage.removeItem('chaser.msg'); }
  const key = h('input', { id: 'key', type: 'password', autocomplete: 'off', required: true, spellcheck: false, placeholder: 'chaser API key' });
  const form = h('form.signin', {
    onsubmit: async (e: Event) => {
      e.preventDefault();
      const k = key.value.trim();
      say(msg, 'checking…');
      try {
        me = await api.call<Account>('GET', '/v1/account', undefined, k);
        api.setKey(k);
        location.hash = '#/sessions';
      } catch (err: any) {
        say(msg, err.status === 401 ? 'That API key was not accepted. Check it and try again (chaser serve wrote the admin key to DATA_DIR/admin.key).'
          : 'Cannot reach the server: ' + err.message, 'error');
        key.select();
      }
    },
  },
    h('h1', {}, 'Chaser console'),
    h('label', { for: 'key' }, 'API key'), key,
    h('button', { type: 'submit', id: 'signin' }, 'Sign in'),
    msg,
    h('p.hint', {}, 'The key stays in this tab (sessionStorage) and is sent only as an Authorization header to this server; closing the tab or signing out forgets it.'));
  clear(app, h('main.center', { id: 'main' }, form));
  key.focus();
}

// ---- sessions

function sessionRow(s: any, refresh: () => void, msg: HTMLElement) {
  const net = s.network?.mode ?? '';
  return h('tr', { 'data-session': s.id, 'data-key': s.id },
    h('td', {}, h('a', { href: `#/s/${s.id}/terminal` }, s.id)),
    h('td', {}, h('span.badge.' + s.status, {}, s.status)),
    h('td', {}, s.image),
    h('td', {}, s.workspace_id ? 'yes' : s.ephemeral ? 'ephemeral' : ''),
    h('td', {}, s.runtime),
    h('td', {}, net),
    h('td', { title: s.created_at }, ago(s.created_at)),
    h('td', { title: s.expires_at }, until(s.expires_at)),
    h('td', {}, h('button.danger', {
      type: 'button', 'aria-label': `Delete ${s.id}`,
      onclick: async () => {
        if (!await ask(`Delete session ${s.id}? Its sandbox and everything not in a workspace is gone.`)) return;
        try {
          await api.del(`/v1/sessions/${s.id}`);
          say(msg, `Session ${s.id} deleted.`, 'ok');
        } catch (e: any) { say(msg, e.message, 'error'); }
        refresh();
      },
    }, 'Delete')));
}

async function sessionsPage() {
  const tbody = h('tbody');
  const msg = h('p.msg', { role: 'status' });
  const refresh = async () => {
    try {
      const l = await api.get('/v1/sessions');
      keepFocus(tbody, () => clear(tbody, l.sessions.length ? l.sessions.map((s: any) => sessionRow(s, refresh, msg))
        : h('tr', {}, h('td', { colspan: 9 }, 'No sessions yet: create one above.'))));
    } catch (e: any) { say(msg, e.message, 'error'); }
  };
  const create = await createForm(refresh);
  page('Sessions', create, msg,
    h('div.scroll', {}, h('table', { id: 'sessions' },
      h('thead', {}, h('tr', {}, ...['Session', 'State', 'Image', 'Workspace', 'Runtime', 'Network', 'Age', 'Expires', ''].map((t) => h('th', {}, t)))),
      tbody)));
  await refresh();
  const timer = setInterval(() => { if (!document.hidden) refresh(); }, 3000);
  cleanup.push(() => clearInterval(timer));
}

async function createForm(refresh: () => void): Promise<HTMLElement> {
  const msg = h('p.msg', { role: 'alert' });
  const kind = h('select', { id: 'new-kind' },
    h('option', { value: 'ephemeral' }, 'ephemeral'),
    h('option', { value: 'image' }, 'image'),
    h('option', { value: 'workspace' }, 'workspace'));
  const image = h('input', { id: 'new-image', placeholder: 'host (default) or an OCI reference' });
  const ws = h('select', { id: 'new-workspace' }, h('option', { value: '' }, '(default workspace)'));
  if (me?.tier === 'paid') {
    api.get('/v1/workspaces').then((l) => l.workspaces.forEach((w: any) => ws.append(h('option', { value: w.name }, w.name)))).catch(() => {});
  }
  const cpu = h('input', { id: 'new-cpu', type: 'number', min: '0.1', step: '0.1', placeholder: 'tier default' });
  const mem = h('input', { id: 'new-mem', type: 'number', min: '16', placeholder: 'tier default' });
  const net = h('select', { id: 'new-network' }, h('option', { value: '' }, 'tier default'),
    h('option', { value: 'none' }, 'none (loopback only)'), h('option', { value: 'internet' }, 'internet'));
  const sync = () => {
    image.closest('label')!.toggleAttribute('hidden', kind.value === 'workspace');
    ws.closest('label')!.toggleAttribute('hidden', kind.value !== 'workspace');
  };
  kind.addEventListener('change', sync);
  const form = h('form.create', {
    onsubmit: async (e: Event) => {
      e.preventDefault();
      const req: any = { type: 'sandbox' };
      if (kind.value === 'ephemeral') req.ephemeral = true;
      if (kind.value !== 'workspace' && image.value.trim()) req.image = image.value.trim();
      if (kind.value === 'image') req.ephemeral = true;
      if (kind.value === 'workspace' && ws.value) req.workspace = ws.value;
      const res: any = {};
      if (cpu.value) res.cpu = Number(cpu.value);
      if (mem.value) res.memory_mb = Number(mem.value);
      if (Object.keys(res).length) req.resources = res;
      if (net.value) req.network = { mode: net.value };
      say(msg, 'creating…');
      try {
        const s = await api.post('/v1/sessions', req);
        say(msg, `created ${s.id}`, 'ok');
        refresh();
      } catch (err: any) { say(msg, err.message, 'error'); }
    },
  },
    h('fieldset', {}, h('legend', {}, 'New sandbox'),
      h('label', {}, 'Kind ', kind),
      h('label', {}, 'Image ', image),
      h('label', { hidden: true }, 'Workspace ', ws),
      h('label', {}, 'CPUs ', cpu),
      h('label', {}, 'Memory (MB) ', mem),
      h('label', {}, 'Network ', net),
      h('button', { type: 'submit', id: 'create' }, 'Create')),
    msg);
  return form;
}

// ---- one session

async function sessionPage(id: string, tab: string) {
  const tabs = ['terminal', 'files', 'ports', 'info'];
  const body = h('div.tabbody');
  let s: any;
  try { s = await api.get(`/v1/sessions/${id}`); } catch (e: any) {
    page('Session ' + id, h('p.msg.error', { role: 'alert' }, e.message));
    return;
  }
  page(`Session ${id}`,
    h('p.meta', {}, `${s.status} · ${s.image} · ${s.runtime}${s.network ? ' · network ' + s.network.mode : ''} · expires ${until(s.expires_at)}`),
    h('nav.tabs', { 'aria-label': 'session' }, tabs.map((t) =>
      h('a', { href: `#/s/${id}/${t}`, 'aria-current': t === tab ? 'page' : undefined }, t === 'info' ? 'self-test' : t))),
    body);
  if (tab === 'terminal') {
    const tv = new TermView(id);
    body.append(tv.el);
    tv.mount();
    cleanup.push(() => tv.dispose());
  } else if (tab === 'files') {
    body.append(filesView(id, (await config).max_file_size || DEFAULT_MAX_UPLOAD));
  } else if (tab === 'ports') {
    body.append(portsView(id));
  } else {
    body.append(selfTestView(id));
  }
}

function portsView(id: string): HTMLElement {
  const msg = h('p.msg', { role: 'status' });
  const tbody = h('tbody');
  const open = async (port: number) => {
    try {
      const p = await api.get(`/v1/sessions/${id}/ports/${port}`);
      const t = await api.ticket(id, 'forward', port);
      const base = p.url || forwardOrigin + p.path;
      // A new top-level window on the forward origin, with no handle back
      // to the console (noopener; the console also sets COOP).
      window.open(base + '?ticket=' + encodeURIComponent(t), '_blank', 'noopener,noreferrer');
    } catch (e: any) { say(msg, e.message, 'error'); }
  };
  const refresh = async () => {
    try {
      const l = await api.get(`/v1/sessions/${id}/ports`);
      keepFocus(tbody, () => clear(tbody, l.ports.length ? l.ports.map((p: any) => h('tr', { 'data-port': p.port, 'data-key': String(p.port) },
        h('td', {}, String(p.port)),
        h('td', {}, p.listening ? 'listening' : 'not listening'),
        h('td', {}, h('label', {}, h('input', {
          type: 'checkbox', checked: !!p.public,
          onchange: async (e: Event) => {
            const on = (e.target as HTMLInputElement).checked;
            await api.put(`/v1/sessions/${id}/ports/${p.port}`, { public: on }).catch((x) => say(msg, x.message, 'error'));
            refresh();
          },
        }), ' public')),
        h('td', {}, h('button', { type: 'button', 'aria-label': `Open port ${p.port}`, onclick: () => open(p.port) }, 'Open')))) :
        h('tr', {}, h('td', { colspan: 4 }, 'Nothing listens yet. Start a server in the terminal (python3 -m http.server 8000) or open a port above.'))));
    } catch (e: any) { say(msg, e.message, 'error'); }
  };
  const num = h('input', { id: 'port', type: 'number', min: '1', max: '65535', required: true, placeholder: '8000' });
  const view = h('section', {},
    h('form.inline', { onsubmit: (e: Event) => { e.preventDefault(); open(Number(num.value)); } },
      h('label', { for: 'port' }, 'Port '), num, h('button', { type: 'submit', id: 'open-port' }, 'Open in a new tab')),
    msg,
    h('div.scroll', {}, h('table', { id: 'ports' }, h('thead', {}, h('tr', {}, ...['Port', 'State', 'Access', ''].map((t) => h('th', {}, t)))), tbody)),
    h('p.hint', {}, 'Ports open on the API server\'s origin with a single-use ticket; the console\'s key never leaves this tab.'));
  refresh();
  const timer = setInterval(() => { if (!document.hidden) refresh(); }, 3000);
  cleanup.push(() => clearInterval(timer));
  return view;
}

function selfTestView(id: string): HTMLElement {
  const out = h('div', { id: 'selftest' }, 'running the self-test…');
  api.post(`/v1/sessions/${id}/self-test`).then((r) => {
    const kv = (k: string, v: any) => h('tr', {}, h('th', { scope: 'row' }, k), h('td', {}, v == null ? '' : String(v)));
    clear(out,
      h('table.kv', {},
        kv('user', r.user), kv('cwd', r.cwd), kv('home', r.home), kv('hostname', r.hostname),
        kv('os', r.os ? `${r.os.name ?? r.os.id} ${r.os.version ?? ''}` : ''), kv('kernel', r.kernel), kv('runtime', r.runtime),
        kv('shell', r.shell ? `${r.shell.path} ${r.shell.version ?? ''}` : ''),
        kv('limits', r.limits ? `${r.limits.cpus ?? '?'} CPUs, ${r.limits.memory_bytes ? fmtBytes(r.limits.memory_bytes) : '?'} memory, ${r.limits.pids ?? '?'} pids` : ''),
        kv('PATH', (r.path ?? []).map((p: any) => p.dir + (p.exists ? '' : ' (missing)')).join(':'))),
      h('h2', {}, 'Tools'),
      h('div.scroll', {}, h('table', {}, h('thead', {}, h('tr', {}, h('th', {}, 'Tool'), h('th', {}, 'Found'), h('th', {}, 'Version'))),
        h('tbody', {}, (r.tools ?? []).map((t: any) => h('tr', {}, h('td', {}, t.name), h('td', {}, t.found ? '✓ ' + (t.path ?? '') : '–'), h('td.wrap', {}, t.version ?? t.error ?? '')))))));
  }).catch((e) => clear(out, h('p.msg.error', { role: 'alert' }, e.message)));
  return out;
}

// ---- workspaces

async function workspacesPage() {
  const msg = h('p.msg', { role: 'status' });
  const tbody = h('tbody');
  const refresh = async () => {
    try {
      const l = await api.get('/v1/workspaces');
      keepFocus(tbody, () => clear(tbody, l.workspaces.map((w: any) => h('tr', { 'data-workspace': w.name, 'data-key': w.name },
        h('td', {}, w.name), h('td', {}, w.image), h('td', {}, fmtBytes(w.size_bytes ?? 0)),
        h('td', {}, w.session_id ? h('a', { href: `#/s/${w.session_id}/terminal` }, w.session_id) : ''),
        h('td', {}, w.default ? 'default' : h('button', {
          type: 'button', onclick: () => api.put('/v1/defaults/sandbox', { workspace: w.name }).then(refresh, (e) => say(msg, e.message, 'error')),
        }, 'Make default')),
        h('td', {}, h('button.danger', {
          type: 'button', onclick: async () => {
            if (!await ask(`Delete workspace ${w.name} and all its files?`)) return;
            await api.del(`/v1/workspaces/${encodeURIComponent(w.name)}`).catch((e) => say(msg, e.message, 'error'));
            refresh();
          },
        }, 'Delete'))))));
    } catch (e: any) { say(msg, e.message, 'error'); }
  };
  const name = h('input', { id: 'ws-name', required: true, pattern: '[a-z0-9][a-z0-9-]*', placeholder: 'name', 'aria-label': 'workspace name' });
  const image = h('input', { id: 'ws-image', placeholder: 'image (default host)', 'aria-label': 'workspace image' });
  page('Workspaces',
    h('form.inline', {
      onsubmit: async (e: Event) => {
        e.preventDefault();
        try {
          await api.post('/v1/workspaces', { name: name.value, ...(image.value ? { image: image.value } : {}) });
          name.value = '';
          refresh();
        } catch (x: any) { say(msg, x.message, 'error'); }
      },
    }, name, image, h('button', { type: 'submit' }, 'Create workspace')),
    msg,
    h('div.scroll', {}, h('table', {}, h('thead', {}, h('tr', {}, ...['Name', 'Image', 'Size', 'Session', 'Default', ''].map((t) => h('th', {}, t)))), tbody)));
  refresh();
}

// ---- admin

// adminPage: accounts and the server's image cache. The nav shows it to
// admins only; anyone else who opens #/admin sees the server's 403.
async function adminPage(query: URLSearchParams) {
  if (!me?.admin) {
    let why = 'this page is for admin accounts';
    try { await api.get('/v1/accounts'); } catch (e: any) { why = `${e.status} ${e.message}`; }
    page('Admin', h('p.msg.error', { role: 'alert', id: 'admin-denied' },
      `Only admins can manage accounts and images (the server answered ${why}).`));
    return;
  }
  const msg = h('p.msg', { role: 'status', id: 'admin-msg' });
  const accounts = h('tbody');
  const refresh = async () => {
    try {
      const l = await api.get('/v1/accounts');
      keepFocus(accounts, () => clear(accounts, l.accounts.map((a: any) => h('tr', { 'data-account': a.name, 'data-key': a.id },
        h('td', {}, a.name), h('td', {}, a.tier), h('td', {}, a.admin ? 'admin' : ''), h('td', {}, ago(a.created_at)),
        h('td', {}, a.id),
        h('td', {}, a.id === me?.id ? '' : h('button.danger', {
          type: 'button', 'aria-label': `Delete account ${a.name}`, onclick: async () => {
            if (!await ask(`Delete account ${a.name}? Its keys stop working, its sessions end and its workspaces are deleted with their files.`)) return;
            try {
              await api.del(`/v1/accounts/${encodeURIComponent(a.id)}?force=true`);
              say(msg, `Account ${a.name} deleted.`, 'ok');
            } catch (e: any) { say(msg, e.message, 'error'); }
            refresh();
          },
        }, 'Delete'))))));
    } catch (e: any) { say(msg, 'accounts: ' + e.message, 'error'); }
  };
  const name = h('input', { required: true, placeholder: 'name', id: 'acct-name', 'aria-label': 'account name' });
  const tier = h('select', { id: 'acct-tier', 'aria-label': 'tier' }, h('option', {}, 'free'), h('option', {}, 'paid'));
  const shown = h('p.msg', { role: 'status' });
  page('Admin',
    h('h2', {}, 'Accounts'),
    h('form.inline', {
      onsubmit: async (e: Event) => {
        e.preventDefault();
        try {
          const a = await api.post('/v1/accounts', { name: name.value, tier: tier.value });
          clear(shown, 'Key of ', h('strong', {}, a.name), ' (shown once): ', h('code', {}, a.api_key));
          refresh();
        } catch (x: any) { say(msg, x.message, 'error'); }
      },
    }, name, tier, h('button', { type: 'submit' }, 'Create account')),
    shown, msg,
    h('div.scroll', {}, h('table', { id: 'accounts' }, h('thead', {}, h('tr', {}, ...['Name', 'Tier', '', 'Created', 'ID', ''].map((t) => h('th', {}, t)))), accounts)),
    imagesSection(Number(query.get('limit')) || 20));
  refresh();
}

// imagesSection lists the server's image cache a page at a time (GET
// /v1/images?limit&next_token; "Show more" fetches the next page), pulls
// one with the server's progress (POST /v1/images, stream: NDJSON) and
// deletes one after a confirmation.
function imagesSection(limit: number): HTMLElement {
  const msg = h('p.msg', { role: 'status', id: 'images-msg' });
  const tbody = h('tbody');
  let next = '';
  const more = h('button', { type: 'button', id: 'images-more', hidden: true, onclick: () => load(true) }, 'Show more');
  const row = (i: any) => h('tr', { 'data-image': i.ref, 'data-key': i.ref },
    h('td', {}, i.ref),
    h('td', { title: i.digest }, (i.digest ?? '').replace(/^sha256:/, '').slice(0, 12)),
    h('td.num', {}, fmtBytes(i.size ?? 0)), h('td.num', {}, i.layers),
    h('td', { title: i.pulled_at }, i.pulled_at ? ago(i.pulled_at) : ''),
    h('td', {}, h('button.danger', {
      type: 'button', 'aria-label': `Delete image ${i.ref}`, onclick: async () => {
        if (!await ask(`Delete image ${i.ref} from the server's cache? Sessions already running keep it; new ones pull it again.`)) return;
        try {
          await api.del('/v1/images/' + encodeURI(i.ref));
          say(msg, `Image ${i.ref} deleted.`, 'ok');
        } catch (e: any) { say(msg, e.status === 403 ? `Not allowed (403): ${e.message}` : `${i.ref}: ${e.message}`, 'error'); }
        load(false);
      },
    }, 'Delete')));
  const load = async (append: boolean) => {
    try {
      const l = await api.get('/v1/images?' + api.q({ limit: String(limit), ...(append && next ? { next_token: next } : {}) }));
      const rows = l.images.map(row);
      if (append) tbody.append(...rows);
      else keepFocus(tbody, () => clear(tbody, rows.length ? rows : h('tr', {}, h('td', { colspan: 6 }, 'No images cached yet: pull one above, or create a session with an image.'))));
      next = l.next_token || '';
      more.hidden = !next;
      if (append && rows.length) rows[0].querySelector('button')?.focus();
    } catch (e: any) { say(msg, 'images: ' + e.message, 'error'); }
  };

  // Pulling can take minutes: the form stays usable by keyboard (the
  // button is marked busy rather than disabled, so it keeps the focus).
  const ref = h('input', { id: 'image-ref', required: true, placeholder: 'registry/repository:tag', 'aria-label': 'image reference', spellcheck: false });
  const btn = h('button', { type: 'submit', id: 'image-pull' }, 'Pull');
  const bar = h('progress', { id: 'pull-progress', hidden: true, max: 1, value: 0 });
  let busy = false;
  const form = h('form.inline', {
    'aria-label': 'pull an image',
    onsubmit: async (e: Event) => {
      e.preventDefault();
      const r = ref.value.trim();
      if (busy || !r) return;
      busy = true;
      btn.setAttribute('aria-disabled', 'true');
      form.setAttribute('aria-busy', 'true');
      btn.textContent = 'Pulling…';
      bar.hidden = false;
      bar.removeAttribute('value'); // indeterminate until the first progress
      say(msg, `pulling ${r}…`);
      try {
        const img = await api.pull(r, (ev) => {
          if (ev.total) { bar.max = ev.total; bar.value = ev.current; }
          say(msg, `pulling ${r}: ${ev.layers_done}/${ev.layers} layers, ${fmtBytes(ev.current)} of ${fmtBytes(ev.total)}`);
        });
        say(msg, `Pulled ${img.ref} (${img.layers} layers, ${fmtBytes(img.size)}).`, 'ok');
        ref.value = '';
        load(false);
      } catch (x: any) {
        say(msg, `Could not pull ${r}: ${x.message}` + (x.code && x.code !== 'error' ? ` (${x.code})` : ''), 'error');
      } finally {
        busy = false;
        btn.removeAttribute('aria-disabled');
        form.removeAttribute('aria-busy');
        btn.textContent = 'Pull';
        bar.hidden = true;
      }
    },
  }, ref, btn, bar);
  load(false);
  return h('section', { 'aria-labelledby': 'images-h' },
    h('h2', { id: 'images-h' }, 'Images'),
    form, msg,
    h('div.scroll', {}, h('table', { id: 'images' }, h('thead', {}, h('tr', {}, ...['Reference', 'Digest', 'Size', 'Layers', 'Pulled', ''].map((t) => h('th', {}, t)))), tbody)),
    more);
}

// ---- routing

async function route() {
  cleanup.forEach((f) => f());
  cleanup = [];
  const [path, qs] = location.hash.replace(/^#\/?/, '').split('?');
  const parts = path.split('/');
  if (!api.getKey()) { signInPage(); return; }
  if (!me) {
    try { me = await api.get<Account>('/v1/account'); } catch { return; /* 401 signs out */ }
  }
  switch (parts[0]) {
    case 's': return sessionPage(parts[1], parts[2] || 'terminal');
    case 'workspaces': return workspacesPage();
    case 'admin': return adminPage(new URLSearchParams(qs));
    case 'sessions': return sessionsPage();
    default: location.hash = '#/sessions';
  }
}

config.then((c) => { if (c.forward_origin) forwardOrigin = c.forward_origin; });
window.addEventListener('hashchange', route);
route();
