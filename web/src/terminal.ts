// The browser terminal: xterm.js on the PTY WebSocket (human mode, JSON
// control frames), opened with a single-use ticket. A dropped connection
// reattaches with pty_id and the exact offset, so the server replays what
// was missed; an exited shell shows its exit code.
import { Terminal } from '@xterm/xterm';
import { FitAddon } from '@xterm/addon-fit';
import '@xterm/xterm/css/xterm.css';
import { ticket } from './api';
import { h } from './dom';

const enc = new TextEncoder();

export class TermView {
  el: HTMLElement;
  term: Terminal;
  private fit = new FitAddon();
  private ws: WebSocket | null = null;
  private ptyId = '';
  private base = 0;     // open.offset of the current connection
  private received = 0; // bytes of frames since open
  private exited: number | null = null;
  private disposed = false;
  private retries = 0;
  private escaped = false; // the last key was Esc: a Tab now leaves
  private state: HTMLElement;
  private box: HTMLElement;
  private ro: ResizeObserver;
  openedAt = 0; // performance.now() when the first output arrived

  constructor(private session: string) {
    this.state = h('span.tstate', { role: 'status', 'aria-live': 'polite' }, 'connecting…');
    this.box = h('div.term', { 'data-testid': 'terminal', 'aria-describedby': 'term-keys' });
    this.el = h('section.termwrap', {},
      h('div.toolbar', {},
        this.state,
        h('button', { type: 'button', onclick: () => this.copy(), title: 'Copy the selection (Ctrl+Shift+C)' }, 'Copy'),
        h('button', { type: 'button', onclick: () => this.paste(), title: 'Paste (Ctrl+Shift+V)' }, 'Paste'),
        h('button', { type: 'button', onclick: () => this.restart() }, 'New terminal')),
      this.box,
      h('p.hint.keys', { id: 'term-keys' }, 'Ctrl+Shift+C copies, Ctrl+Shift+V pastes; Tab goes to the shell: Esc, then Tab or Shift+Tab, leaves the terminal.'));
    this.term = new Terminal({
      cursorBlink: true, fontSize: 14, scrollback: 5000,
      fontFamily: 'ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace',
      theme: { background: '#0f1419', foreground: '#e6e1cf' },
    });
    this.term.loadAddon(this.fit);
    this.term.onData((d) => this.send(enc.encode(d)));
    this.term.onBinary((d) => this.send(Uint8Array.from(d, (c) => c.charCodeAt(0))));
    this.term.onResize(({ cols, rows }) => this.control({ type: 'resize', cols, rows }));
    // Keys the page keeps from the shell. Returning false makes xterm.js
    // ignore the key, and the browser's default runs:
    // - Ctrl+Shift+C copies the selection (and does not open the browser's
    //   element inspector).
    // - Ctrl+Shift+V: the browser's own paste ("paste as plain text") fires
    //   a paste event, which xterm.js hands to the shell (bracketed when
    //   the shell asks). No clipboard permission is needed for that; the
    //   Paste button reads the clipboard through the Clipboard API instead.
    // - Esc, then Tab or Shift+Tab, moves the focus out of the terminal
    //   (the shell gets the Esc; Tab alone stays completion), as editors
    //   such as CodeMirror do, so keyboard users are never trapped.
    this.term.attachCustomKeyEventHandler((e) => {
      if (e.type !== 'keydown') return !(e.ctrlKey && e.shiftKey && /^[cv]$/i.test(e.key));
      if (e.ctrlKey && e.shiftKey && (e.key === 'C' || e.key === 'c')) { e.preventDefault(); this.copy(); return false; }
      if (e.ctrlKey && e.shiftKey && (e.key === 'V' || e.key === 'v')) return false;
      if (e.key === 'Tab' && this.escaped && !e.ctrlKey && !e.altKey && !e.metaKey) { this.escaped = false; return false; }
      if (!['Shift', 'Control', 'Alt', 'Meta'].includes(e.key)) this.escaped = e.key === 'Escape';
      return true;
    });
    this.ro = new ResizeObserver(() => { if (this.box.isConnected) this.fit.fit(); });
  }

  // mount opens the terminal in the page and connects.
  mount() {
    this.term.open(this.box);
    this.fit.fit();
    this.ro.observe(this.box);
    (window as any).chaserTerm = this; // for people debugging, and the tests
    this.connect();
    this.term.focus();
  }

  dispose() {
    this.disposed = true;
    this.ro.disconnect();
    this.ws?.close(1000);
    this.term.dispose();
    if ((window as any).chaserTerm === this) delete (window as any).chaserTerm;
  }

  // screen is the terminal's buffer as text, one line per row.
  screen(): string {
    const b = this.term.buffer.active, out: string[] = [];
    for (let i = 0; i < b.length; i++) out.push(b.getLine(i)?.translateToString(true) ?? '');
    return out.join('\n');
  }

  private setState(s: string, kind = '') {
    this.state.textContent = s;
    this.state.className = 'tstate ' + kind;
    this.el.dataset.state = kind || s;
  }

  private send(b: Uint8Array) {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(b);
  }

  private control(m: object) {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(m));
  }

  private async connect() {
    if (this.disposed) return;
    let t: string;
    try {
      t = await ticket(this.session, 'pty');
    } catch (e: any) {
      this.setState('cannot open a terminal: ' + e.message, 'error');
      return;
    }
    const p = new URLSearchParams({ ticket: t, mode: 'human', cols: String(this.term.cols), rows: String(this.term.rows) });
    if (this.ptyId) { p.set('pty_id', this.ptyId); p.set('offset', String(this.base + this.received)); }
    const ws = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/v1/sessions/${this.session}/pty?${p}`);
    ws.binaryType = 'arraybuffer';
    this.ws = ws;
    let opened = false;
    ws.onmessage = (ev) => {
      if (typeof ev.data === 'string') {
        const m = JSON.parse(ev.data);
        if (m.type === 'open') {
          opened = true;
          this.retries = 0;
          this.ptyId = m.pty_id;
          this.base = m.offset ?? 0;
          this.received = 0;
          this.setState('connected', 'connected');
          this.control({ type: 'resize', cols: this.term.cols, rows: this.term.rows });
          return;
        }
        this.received += enc.encode(ev.data).length;
        if (m.type === 'exit') {
          this.exited = m.code;
          this.setState(`exited with code ${m.code}`, 'exited');
          this.term.write(`\r\n\x1b[2m[the shell exited with code ${m.code}; “New terminal” starts another]\x1b[0m\r\n`);
        } else if (m.type === 'error') {
          this.setState('error: ' + m.message, 'error');
        }
        return;
      }
      const b = new Uint8Array(ev.data as ArrayBuffer);
      this.received += b.length;
      if (!this.openedAt) this.openedAt = performance.now();
      this.term.write(b);
    };
    ws.onclose = () => {
      if (this.ws !== ws || this.disposed || this.exited !== null) return;
      if (!opened && this.ptyId && this.retries >= 3) {
        // The terminal is gone (its grace ran out): offer a new one.
        this.setState('the terminal is gone; start a new one', 'error');
        return;
      }
      this.retries++;
      const wait = Math.min(500 * 2 ** (this.retries - 1), 8000);
      this.setState(`disconnected; reconnecting in ${Math.round(wait / 1000) || 1}s…`, 'reconnecting');
      setTimeout(() => this.connect(), wait);
    };
  }

  // restart drops the current terminal and opens a new one.
  restart() {
    const old = this.ws;
    this.ws = null;
    old?.close(1000);
    this.ptyId = '';
    this.exited = null;
    this.retries = 0;
    this.term.reset();
    this.setState('connecting…');
    this.connect();
    this.term.focus();
  }

  // drop closes the socket as a network failure would (tests use it).
  drop() { this.ws?.close(4000, 'dropped'); }

  // copy puts the terminal's selection on the clipboard; says so, or why
  // not, in the state line.
  async copy() {
    const s = this.term.getSelection();
    this.term.focus();
    if (!s) { this.flash('nothing selected to copy'); return; }
    try {
      await navigator.clipboard.writeText(s);
      this.flash(`copied ${s.length} characters`);
    } catch (e: any) { this.flash('cannot copy: ' + (e?.message ?? 'no clipboard access')); }
  }

  // paste reads the clipboard (the browser may ask the user first) and
  // types it into the shell as a paste (bracketed when the shell asks).
  async paste() {
    try {
      const s = await navigator.clipboard.readText();
      if (s) this.term.paste(s);
    } catch (e: any) { this.flash('cannot paste: ' + (e?.message ?? 'no clipboard access') + ' (Ctrl+Shift+V works without it)'); }
    this.term.focus();
  }

  // flash shows a note in the state line for a moment.
  private flash(note: string) {
    const was = this.state.textContent, cls = this.state.className;
    this.state.textContent = note;
    setTimeout(() => { if (this.state.textContent === note) { this.state.textContent = was; this.state.className = cls; } }, 2500);
  }
}
