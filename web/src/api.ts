// The console's only way to the API: same-origin fetches with the key from
// sessionStorage in an Authorization header. The key never goes in a URL:
// WebSockets and forwarded ports get single-use tickets instead.

const KEY = 'chaser.key';

export const getKey = (): string | null => sessionStorage.getItem(KEY);
export const setKey = (k: string) => sessionStorage.setItem(KEY, k);
export const clearKey = () => sessionStorage.removeItem(KEY);

export class ApiError extends Error {
  constructor(public status: number, public code: string, message: string) {
    super(message);
  }
}

// onUnauthorized is called when a stored key stops working (401).
export let onUnauthorized: () => void = () => {};
export const setOnUnauthorized = (f: () => void) => { onUnauthorized = f; };

function headers(extra?: Record<string, string>, key = getKey()): Record<string, string> {
  const h: Record<string, string> = { ...extra };
  if (key) h['Authorization'] = 'Bearer ' + key;
  return h;
}

async function fail(r: Response): Promise<never> {
  let code = 'error', msg = `${r.status} ${r.statusText}`;
  try {
    const b = await r.json();
    if (b?.error) { code = b.error.code; msg = b.error.message; }
  } catch { /* not JSON */ }
  throw new ApiError(r.status, code, msg);
}

export async function call<T = any>(method: string, path: string, body?: unknown, key?: string): Promise<T> {
  const init: RequestInit = { method, headers: headers(body !== undefined ? { 'Content-Type': 'application/json' } : {}, key ?? getKey()) };
  if (body !== undefined) init.body = JSON.stringify(body);
  const r = await fetch(path, init);
  if (!r.ok) {
    if (r.status === 401 && key === undefined) onUnauthorized();
    return fail(r);
  }
  if (r.status === 204) return undefined as T;
  const ct = r.headers.get('Content-Type') || '';
  return (ct.includes('json') ? r.json() : r.text()) as Promise<T>;
}

export const get = <T = any>(p: string) => call<T>('GET', p);
export const post = <T = any>(p: string, b: unknown = {}) => call<T>('POST', p, b);
export const put = <T = any>(p: string, b: unknown) => call<T>('PUT', p, b);
export const del = <T = any>(p: string) => call<T>('DELETE', p);

export const q = (v: Record<string, string>) => new URLSearchParams(v).toString();

// ticket asks for a single-use ticket of a session (POST …/tickets).
export async function ticket(session: string, purpose: 'pty' | 'forward', port?: number): Promise<string> {
  const t = await post<{ ticket: string }>(`/v1/sessions/${session}/tickets`, port ? { purpose, port } : { purpose });
  return t.ticket;
}

// download fetches a file with the key and hands it to the browser as a
// download, without the key ever being in a URL.
export async function download(session: string, path: string): Promise<void> {
  const r = await fetch(`/v1/sessions/${session}/download?` + q({ path }), { headers: headers() });
  if (!r.ok) return fail(r);
  const blob = await r.blob();
  const a = document.createElement('a');
  a.href = URL.createObjectURL(blob);
  a.download = path.split('/').pop() || 'download';
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 60_000);
}

// upload sends one file as multipart with progress (fetch has none for
// uploads, so XMLHttpRequest).
export function upload(session: string, path: string, file: File, progress: (done: number, total: number) => void): Promise<any> {
  return new Promise((resolve, reject) => {
    const x = new XMLHttpRequest();
    x.open('POST', `/v1/sessions/${session}/upload`);
    for (const [k, v] of Object.entries(headers())) x.setRequestHeader(k, v);
    x.upload.onprogress = (e) => progress(e.loaded, e.total);
    x.onload = () => {
      let b: any = null;
      try { b = JSON.parse(x.responseText); } catch { /* */ }
      if (x.status >= 200 && x.status < 300) resolve(b);
      else reject(new ApiError(x.status, b?.error?.code || 'error', b?.error?.message || `${x.status} ${x.statusText}`));
    };
    x.onerror = () => reject(new ApiError(0, 'network', 'the upload was cut off'));
    const fd = new FormData();
    fd.append('path', path);
    fd.append('file', file);
    x.send(fd);
  });
}

export type PullProgress = { current: number; total: number; layers_done: number; layers: number };

// pull pulls an image into the server's cache with progress: POST
// /v1/images {stream: true} answers NDJSON progress lines, then done (the
// image) or error. Errors before the stream starts (bad reference, a
// registry not allowed) come as an ordinary error answer.
export async function pull(ref: string, progress: (p: PullProgress) => void): Promise<any> {
  const r = await fetch('/v1/images', {
    method: 'POST',
    headers: headers({ 'Content-Type': 'application/json' }),
    body: JSON.stringify({ ref, stream: true }),
  });
  if (!r.ok) {
    if (r.status === 401) onUnauthorized();
    return fail(r);
  }
  const reader = r.body!.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (value) buf += value;
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl).trim();
      buf = buf.slice(nl + 1);
      if (!line) continue;
      const ev = JSON.parse(line);
      if (ev.type === 'progress') progress(ev);
      else if (ev.type === 'done') return ev.image;
      else if (ev.type === 'error') throw new ApiError(r.status, ev.error?.code || 'error', ev.error?.message || 'the pull failed');
    }
    if (done) throw new ApiError(0, 'network', 'the connection closed before the pull finished');
  }
}
