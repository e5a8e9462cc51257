// The file browser of a session: list a directory, go into folders,
// download, upload by drag and drop or picker (with progress; the size
// limit is checked before anything is sent), make a directory, delete.
import * as api from './api';
import { h, clear, say, fmtBytes, ask, keepFocus } from './dom';

export function filesView(id: string, maxUpload: number): HTMLElement {
  let dir = sessionStorage.getItem('chaser.dir.' + id) || '/workspace';
  const msg = h('p.msg', { role: 'status', id: 'files-msg' });
  const crumbs = h('div.crumbs', { 'aria-label': 'path' });
  const tbody = h('tbody');
  const progress = h('progress', { max: 100, value: 0, hidden: true, id: 'upload-progress' });
  const join = (d: string, n: string) => (d.endsWith('/') ? d : d + '/') + n;

  const load = async (d: string) => {
    try {
      const l = await api.get(`/v1/sessions/${id}/files?` + api.q({ path: d }));
      dir = l.path || d;
      sessionStorage.setItem('chaser.dir.' + id, dir);
      const segs = dir.split('/').filter(Boolean);
      clear(crumbs, h('a', { href: '#', onclick: (e: Event) => { e.preventDefault(); load('/'); } }, '/'),
        segs.map((s, i) => [h('a', { href: '#', onclick: (e: Event) => { e.preventDefault(); load('/' + segs.slice(0, i + 1).join('/')); } }, s), '/']));
      const entries = [...l.entries].sort((a: any, b: any) => (a.type === 'dir' ? 0 : 1) - (b.type === 'dir' ? 0 : 1) || a.name.localeCompare(b.name));
      keepFocus(tbody, () => clear(tbody,
        dir !== '/' ? h('tr', {}, h('td', { colspan: 5 }, h('a', { href: '#', onclick: (e: Event) => { e.preventDefault(); load(dir.replace(/\/[^/]+\/?$/, '') || '/'); } }, '..'))) : null,
        entries.map((f: any) => h('tr', { 'data-file': f.name, 'data-key': f.name },
          h('td', {}, f.type === 'dir'
            ? h('a', { href: '#', onclick: (e: Event) => { e.preventDefault(); load(join(dir, f.name)); } }, f.name + '/')
            : f.name + (f.type === 'symlink' ? ' → ' + (f.link_target ?? '') : '')),
          h('td.num', {}, f.type === 'file' ? fmtBytes(f.size) : ''),
          h('td', {}, f.mode),
          h('td', {}, f.mtime ? new Date(f.mtime).toLocaleString() : ''),
          h('td', {},
            f.type === 'file' ? h('button', { type: 'button', 'aria-label': `Download ${f.name}`, onclick: () => api.download(id, join(dir, f.name)).catch((e) => say(msg, e.message, 'error')) }, 'Download') : null,
            h('button.danger', {
              type: 'button', 'aria-label': `Delete ${f.name}`, onclick: async () => {
                if (!await ask(`Delete ${join(dir, f.name)}${f.type === 'dir' ? ' and everything in it' : ''}?`)) return;
                try {
                  await api.del(`/v1/sessions/${id}/files?` + api.q({ path: join(dir, f.name), ...(f.type === 'dir' ? { recursive: 'true' } : {}) }));
                  load(dir);
                } catch (e: any) { say(msg, e.message, 'error'); }
              },
            }, 'Delete')))),
        l.truncated ? h('tr', {}, h('td', { colspan: 5 }, `(only the first ${l.max_entries} entries are shown)`)) : null));
    } catch (e: any) { say(msg, e.message, 'error'); }
  };

  const send = async (files: FileList | File[]) => {
    for (const f of Array.from(files)) {
      if (f.size > maxUpload) {
        say(msg, `${f.name} is ${fmtBytes(f.size)}: the server takes at most ${fmtBytes(maxUpload)} per file, so it was not sent. Split it, or fetch it from inside the sandbox.`, 'error');
        continue;
      }
      progress.hidden = false;
      progress.value = 0;
      say(msg, `uploading ${f.name}…`);
      try {
        await api.upload(id, join(dir, f.name), f, (d, t) => { progress.value = t ? Math.round((100 * d) / t) : 0; });
        say(msg, `uploaded ${f.name} (${fmtBytes(f.size)})`, 'ok');
      } catch (e: any) { say(msg, `${f.name}: ${e.message}`, 'error'); }
      progress.hidden = true;
    }
    load(dir);
  };

  const picker = h('input', { type: 'file', multiple: true, id: 'upload', onchange: (e: Event) => send((e.target as HTMLInputElement).files!) });
  const drop = h('div.drop', {
    ondragover: (e: DragEvent) => { e.preventDefault(); drop.classList.add('over'); },
    ondragleave: () => drop.classList.remove('over'),
    ondrop: (e: DragEvent) => { e.preventDefault(); drop.classList.remove('over'); if (e.dataTransfer?.files.length) send(e.dataTransfer.files); },
  }, h('label', { for: 'upload' }, `Drop files here or choose them (up to ${fmtBytes(maxUpload)} each): `), picker, progress);
  const mk = h('input', { id: 'mkdir', placeholder: 'new directory', 'aria-label': 'new directory name', required: true, pattern: '[^/]+' });
  const view = h('section', {},
    crumbs,
    h('div.row', {},
      h('form.inline', {
        onsubmit: async (e: Event) => {
          e.preventDefault();
          try { await api.post(`/v1/sessions/${id}/files/mkdir`, { path: join(dir, mk.value) }); mk.value = ''; load(dir); } catch (x: any) { say(msg, x.message, 'error'); }
        },
      }, mk, h('button', { type: 'submit' }, 'Make directory')),
      h('button', { type: 'button', onclick: () => load(dir) }, 'Refresh')),
    drop, msg,
    h('div.scroll', {}, h('table', { id: 'files' }, h('thead', {}, h('tr', {}, ...['Name', 'Size', 'Mode', 'Modified', ''].map((t) => h('th', {}, t)))), tbody)));
  load(dir);
  return view;
}
