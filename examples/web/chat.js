// Glint chat for the pages: one client that speaks the envelope of
// docs/chat.md over the WHEP session's "glint" data channel or, with no
// session (the stream is offline, or an HLS page), over the WebSocket. It
// holds each event until the player's playhead reaches the event's stream
// time, so a delayed viewer sees a reaction with the moment, not before.

const el = (tag, cls, text) => {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
};

export class Chat {
  // stream: the stream name; playhead(): the stream time (ms) on screen, or
  // null when unknown; ui: the panel's element ids.
  constructor(stream, playhead, root) {
    this.stream = stream;
    this.playhead = playhead;
    this.root = root;
    this.lastSeq = 0;
    this.seen = new Set();
    this.held = [];          // events waiting for the playhead
    this.me = null;          // {id, name, role, badge} once signed in
    this.token = localStorage.getItem('glint-chat:' + stream) || '';
    this.transport = null;
    this.ref = 0;
    this.pending = new Map(); // ref → resolve
    this.settings = { comments: true, slow_seconds: 0 };
    this.emoji = [];
    // What a test can read: when each message was shown and at what playhead.
    this.shown = {};
    window.glintChat = this;
    setInterval(() => this.release(), 50);
  }

  $(id) { return this.root.querySelector('#' + id); }

  // attach starts using a transport: {send(text), close()}; the caller
  // routes its frames to receive() and calls detached() when it ends.
  attach(transport) {
    if (this.transport && this.transport !== transport) this.transport.close();
    this.transport = transport;
    this.note('');
    if (this.token) this.request('auth', { token: this.token });
    if (this.lastSeq) this.request('resume', { after: this.lastSeq });
  }

  detached(transport) {
    if (this.transport === transport) this.transport = null;
  }

  // openWebSocket connects over the WebSocket, reconnecting with backoff
  // and resuming from the last sequence number seen.
  openWebSocket() {
    if (this.ws) return;
    // The token and where to resume go in the first frames (attach), not
    // the URL: URLs end up in proxies' logs.
    const url = new URL('/api/streams/' + encodeURIComponent(this.stream) + '/chat', location.href);
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    url.searchParams.set('batch', '1'); // bursts come as one message, an array of envelopes
    const ws = new WebSocket(url);
    this.ws = ws;
    const t = { send: (s) => ws.send(s), close: () => ws.close(), kind: 'websocket' };
    ws.onopen = () => { this.attach(t); this.backoff = 1; };
    ws.onmessage = (e) => this.receive(e.data);
    ws.onclose = () => {
      this.ws = null;
      this.detached(t);
      if (this.wantWebSocket) {
        this.backoff = Math.min((this.backoff || 1) * 2, 30);
        setTimeout(() => this.wantWebSocket && this.openWebSocket(), this.backoff * 500);
      }
    };
  }

  useWebSocket(on) {
    this.wantWebSocket = on;
    if (on) this.openWebSocket();
    else if (this.ws) { const ws = this.ws; this.ws = null; ws.close(); }
  }

  // useChannel adopts an open RTCDataChannel labelled "glint".
  useChannel(dc) {
    const t = { send: (s) => dc.send(s), close: () => dc.close(), kind: 'datachannel' };
    dc.onmessage = (e) => this.receive(typeof e.data === 'string' ? e.data : new TextDecoder().decode(e.data));
    dc.onclose = () => { this.detached(t); if (!this.transport) this.useWebSocket(true); };
    this.useWebSocket(false);
    this.attach(t);
  }

  request(type, body, extra = {}) {
    const ref = 'r' + (++this.ref);
    const env = { v: 1, type, ref, ...extra };
    if (body !== undefined) env.body = body;
    if (!this.transport) return Promise.reject(new Error('not connected'));
    this.transport.send(JSON.stringify(env));
    return new Promise((resolve) => {
      this.pending.set(ref, resolve);
      setTimeout(() => { if (this.pending.delete(ref)) resolve({ type: 'error', body: { reason: 'no answer' } }); }, 10000);
    });
  }

  receive(text) {
    let v;
    try { v = JSON.parse(text); } catch (_) { return; }
    for (const e of Array.isArray(v) ? v : [v]) this.handle(e);
  }

  handle(e) {
    if (!e || typeof e !== 'object') return;
    if (e.ref && this.pending.has(e.ref)) {
      this.pending.get(e.ref)(e);
      this.pending.delete(e.ref);
    }
    switch (e.type) {
      case 'hello':
        this.settings = e.body.settings;
        this.emoji = e.body.emoji || [];
        this.me = e.body.you || null;
        this.render();
        return;
      case 'error':
        if (!e.ref) this.note(e.body.reason);
        return;
      case 'closed':
        this.note('Chat: ' + e.body.reason);
        return;
      case 'ack': case 'pong':
        return;
      case 'room': // a Live Room's slots, on the same channel
        if (this.onroom) this.onroom(e.body);
        return;
    }
    if (!e.seq || this.seen.has(e.seq)) return;
    this.seen.add(e.seq);
    this.lastSeq = Math.max(this.lastSeq, e.seq);
    if (e.type === 'message' || e.type === 'reactions' || e.type === 'badge') {
      this.held.push(e);
      this.release();
    } else {
      this.apply(e);
    }
  }

  // release shows held events whose stream time the playhead has reached.
  release() {
    if (!this.held.length) return;
    const now = this.playhead();
    const keep = [];
    for (const e of this.held) {
      if (now == null || e.st == null || now >= e.st) this.show(e, now);
      else keep.push(e);
    }
    this.held = keep;
  }

  // apply handles events shown at once: deletions and moderation.
  apply(e) {
    if (e.type === 'delete') {
      const li = this.$('chat-log').querySelector(`[data-seq="${e.body.seq}"]`);
      if (li) li.remove();
      this.held = this.held.filter((h) => h.seq !== e.body.seq);
      return;
    }
    if (e.type === 'moderation') {
      this.settings = e.body.settings;
      const b = e.body;
      if (this.me && b.user === this.me.id && (b.action === 'mod' || b.action === 'unmod')) {
        this.me.role = b.action === 'mod' ? 'moderator' : 'viewer';
      }
      const what = { ban: `${b.user} was banned`, unban: `${b.user} was unbanned`, timeout: `${b.user} was timed out for ${b.seconds}s`,
        mod: `${b.user} is now a moderator`, unmod: `${b.user} is no longer a moderator`,
        slow: b.seconds ? `Slow mode: one message every ${b.seconds}s` : 'Slow mode off',
        comments: b.on ? 'Comments are on' : 'Comments are off', words: 'Blocked words updated' }[b.action];
      if (what) this.line(e.seq, el('li', 'system', what));
      this.render();
    }
  }

  show(e, playhead) {
    this.shown[e.seq] = { at: Date.now(), playhead, st: e.st, type: e.type };
    if (e.type === 'reactions') { this.burst(e.body.counts); return; }
    if (e.type === 'badge') {
      const b = e.body;
      this.line(e.seq, el('li', 'system badge', `♥ ${b.user.name} bought a badge`));
      if (this.me && b.user.id === this.me.id) this.me.badge = Math.max(this.me.badge || 0, b.tier);
      return;
    }
    const li = el('li');
    li.dataset.seq = e.seq;
    li.dataset.user = e.from.id;
    const who = el('b', 'who role-' + e.from.role, e.from.name);
    if (e.from.badge) who.prepend(el('span', 'heart', '♥ '));
    li.append(who, document.createTextNode(' '), el('span', 'text', e.body.text));
    if (this.canModerate() && e.from.id !== this.me.id) li.append(this.modButtons(e));
    this.line(e.seq, li);
  }

  // line inserts an item in sequence order and keeps the list bounded.
  line(seq, li) {
    const log = this.$('chat-log');
    li.dataset.order = seq;
    let after = null;
    for (const c of log.children) if (Number(c.dataset.order) > seq) { after = c; break; }
    log.insertBefore(li, after);
    while (log.children.length > 300) log.firstChild.remove();
    log.scrollTop = log.scrollHeight;
  }

  burst(counts) {
    const box = this.$('chat-burst');
    for (const [emoji, n] of Object.entries(counts)) {
      for (let i = 0; i < Math.min(n, 8); i++) {
        const f = el('span', 'float', emoji);
        f.style.left = (10 + Math.random() * 80) + '%';
        f.style.animationDelay = (i * 60) + 'ms';
        box.append(f);
        setTimeout(() => f.remove(), 2200);
      }
    }
  }

  canModerate() { return this.me && (this.me.role === 'host' || this.me.role === 'moderator'); }

  modButtons(e) {
    const span = el('span', 'mod');
    const act = (label, type, body) => {
      const b = el('button', 'small', label);
      b.onclick = async () => this.answer(await this.request(type, body));
      span.append(b);
    };
    act('Delete', 'delete', { seq: e.seq });
    act('Time out', 'timeout', { user: e.from.id, seconds: 60 });
    act('Ban', 'ban', { user: e.from.id });
    if (this.me.role === 'host' && e.from.role === 'viewer') act('Make mod', 'mod', { user: e.from.id, grant: true });
    return span;
  }

  answer(ev) {
    if (ev.type === 'error') this.note(ev.body.reason);
    return ev;
  }

  note(text) { const n = this.$('chat-note'); if (n) n.textContent = text; }

  async signIn(name, streamKey) {
    const headers = { 'Content-Type': 'application/json' };
    if (streamKey) headers.Authorization = 'Bearer ' + streamKey;
    const res = await fetch('/api/streams/' + encodeURIComponent(this.stream) + '/chat/token', { method: 'POST', headers, body: JSON.stringify({ name }) });
    const b = await res.json();
    if (res.status !== 201) { this.note(b.detail || 'Could not sign in'); return; }
    this.token = b.token;
    localStorage.setItem('glint-chat:' + this.stream, b.token);
    if (this.transport) this.answer(await this.request('auth', { token: b.token }));
    else this.useWebSocket(true);
  }

  async post(text) {
    const playhead = this.playhead();
    const extra = playhead == null ? {} : { st: Math.round(playhead) };
    return this.answer(await this.request('message', { text }, extra));
  }

  // render draws the parts that depend on who we are and the settings.
  render() {
    const signedIn = !!this.me;
    this.$('chat-signin').hidden = signedIn;
    this.$('chat-form').hidden = !signedIn;
    this.$('chat-who').textContent = signedIn ? `${this.me.name} (${this.me.role})` : '';
    this.$('chat-state').textContent = !this.settings.comments ? 'Comments are off' :
      this.settings.slow_seconds ? `Slow mode: ${this.settings.slow_seconds}s` : '';
    const reacts = this.$('chat-reactions');
    reacts.replaceChildren(...this.emoji.map((em) => {
      const b = el('button', 'react', em);
      b.disabled = !signedIn;
      b.onclick = () => this.request('reaction', { emoji: em }).then((ev) => this.answer(ev));
      return b;
    }));
    this.$('chat-mod').hidden = !this.canModerate();
    this.$('chat-comments').textContent = this.settings.comments ? 'Turn comments off' : 'Turn comments on';
    this.$('chat-slow').value = String(this.settings.slow_seconds || 0);
    this.$('chat-buy').hidden = !signedIn;
    if (this.me && this.me.role === 'host') this.loadSupporters();
  }

  async loadSupporters() {
    const res = await fetch('/api/streams/' + encodeURIComponent(this.stream) + '/supporters', { headers: { Authorization: 'Bearer ' + this.token } });
    if (res.status !== 200) return;
    const b = await res.json();
    const list = this.$('chat-supporters');
    list.replaceChildren(...b.supporters.map((s) =>
      el('li', '', `♥ ${s.user.name} — tier ${s.tier}, $${(s.total_cents / 100).toFixed(2)} (${s.purchases})`)));
    this.$('chat-total').textContent = b.supporters.length ? `Total $${(b.total_cents / 100).toFixed(2)}` : 'No supporters yet';
    this.$('chat-hostpanel').hidden = false;
  }

  async buy() {
    const res = await fetch('/api/streams/' + encodeURIComponent(this.stream) + '/badges');
    const info = await res.json();
    const box = this.$('chat-tiers');
    box.replaceChildren(...info.tiers.map((t, i) => {
      const b = el('button', '', `${t.name} $${(t.cents / 100).toFixed(2)}`);
      b.disabled = !info.on_sale;
      b.onclick = async () => {
        const r = await fetch('/api/streams/' + encodeURIComponent(this.stream) + '/badges/checkout', {
          method: 'POST', headers: { 'Content-Type': 'application/json', Authorization: 'Bearer ' + this.token },
          body: JSON.stringify({ tier: i + 1 }) });
        const out = await r.json();
        if (r.status !== 201) { this.note(out.detail || 'Checkout failed'); return; }
        location.href = out.url;
      };
      return b;
    }));
    if (!info.on_sale) box.append(el('span', 'muted', ' Badges are on sale while the stream is live.'));
    box.hidden = false;
  }

  // wire connects the panel's controls.
  wire() {
    this.$('chat-signin').onsubmit = (ev) => { ev.preventDefault(); this.signIn(this.$('chat-name').value.trim()); };
    this.$('chat-hostform').onsubmit = (ev) => { ev.preventDefault(); this.signIn('Host', this.$('chat-key').value.trim()); };
    this.$('chat-form').onsubmit = async (ev) => {
      ev.preventDefault();
      const input = this.$('chat-input');
      const text = input.value.trim();
      if (!text) return;
      const a = await this.post(text);
      if (a.type === 'ack') input.value = '';
    };
    this.$('chat-buy').onclick = () => this.buy();
    this.$('chat-comments').onclick = () => this.request('comments', { on: !this.settings.comments }).then((e) => this.answer(e));
    this.$('chat-slow').onchange = (ev) => this.request('slow', { seconds: Number(ev.target.value) }).then((e) => this.answer(e));
    this.$('chat-words').onsubmit = (ev) => {
      ev.preventDefault();
      const words = this.$('chat-word').value.split(/[\s,]+/).filter(Boolean);
      if (words.length) this.request('words', { add: words }).then((e) => { if (this.answer(e).type === 'ack') this.$('chat-word').value = ''; });
    };
    if (new URLSearchParams(location.search).has('paid')) this.note('Thank you! Your badge shows next to your name.');
  }
}

// streamClock maps a video's RTP timestamps to stream time from the
// server's clock reference ({rtp, st, rate} in the WHEP "layers" event) and
// the frame on screen (requestVideoFrameCallback's rtpTimestamp).
export class StreamClock {
  constructor() { this.ref = null; this.frameRTP = null; this.date = null; this.origin = 0; }
  setRef(ref) { if (ref && ref.rate) this.ref = ref; }
  onFrame(meta) { if (meta && meta.rtpTimestamp !== undefined) this.frameRTP = meta.rtpTimestamp >>> 0; }
  // useDate reads the playhead from a player's program date (LL-HLS:
  // EXT-X-PROGRAM-DATE-TIME is the stream's start, origin, plus stream time).
  useDate(get, origin) { this.date = get; this.origin = origin; }
  // now returns the stream time of the frame on screen, in ms, or null.
  now() {
    if (this.date) {
      // The player has no date while it seeks or stalls: keep the last.
      const d = this.date();
      if (d) this.last = d.getTime() - this.origin;
      return this.last === undefined ? null : this.last;
    }
    if (!this.ref || this.frameRTP == null) return null;
    const d = ((this.frameRTP - this.ref.rtp) | 0); // signed 32-bit difference
    return this.ref.st + d * 1000 / this.ref.rate;
  }
}
