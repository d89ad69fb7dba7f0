// Live Rooms in the browser: tiles for the broadcasters a WHEP session's
// slots carry, laid out for one to four, with names, the speaker
// highlighted and what the host muted; and a small WHEP viewer of the room
// for the go-live and guest pages (who watch everyone but themselves).

import { post, remove } from '/static/glint.js';

// SLOTS is how many broadcasters a room has at most: the host and three
// guests. A viewer offers an audio and a video m-line for each.
export const SLOTS = 4;

// addSlots adds the receive-only transceivers of every slot to pc, video
// then audio per slot, so the n-th of each kind is slot n.
export function addSlots(pc) {
  for (let i = 0; i < SLOTS; i++) {
    pc.addTransceiver('video', { direction: 'recvonly' });
    pc.addTransceiver('audio', { direction: 'recvonly' });
  }
}

// slotOf returns the slot a transceiver of a pc set up by addSlots is for.
export function slotOf(pc, transceiver) {
  return Math.floor(pc.getTransceivers().indexOf(transceiver) / 2);
}

// Tiles keeps a tile per occupied slot in a container. A slot's m-lines
// never change, only who is in it: tracks go to their slot's tile as they
// arrive, and room announcements say whom each tile shows. Slot 0 may be
// an existing .tile (the watch page's, whose <video> its stats and chat
// clock read); until the first announcement only it shows.
export class Tiles {
  constructor(container, { first = null, skip = '', muted = true } = {}) {
    this.box = container;
    this.skip = skip; // a broadcaster not to show (the page's own)
    this.tiles = [];  // by slot: {el, video, name, stream, frames, …}
    this.first = first;
    this.room = null;
    this.onroom = null; // called with every announcement
    this.muted = muted; // a page opened by a click may play sound at once
    if (first) this.tile(0);
  }

  // addTrack puts a received track in its slot's tile, in place of the
  // one of its kind a previous connection left (a reconnect).
  addTrack(slot, track) {
    const t = this.tile(slot);
    for (const old of t.stream.getTracks()) if (old.kind === track.kind && old !== track) t.stream.removeTrack(old);
    if (!t.stream.getTracks().includes(track)) t.stream.addTrack(track);
    if (slot === 0 && !this.room) this.show(t, true); // the host's, before any announcement
  }

  // show puts the tile's stream on its <video>, or takes it off.
  show(t, on) {
    t.el.hidden = !on;
    if (on && t.video.srcObject !== t.stream) t.video.srcObject = t.stream;
    if (!on && t.video.srcObject) t.video.srcObject = null;
  }

  // reset shows slot 0 alone again (the watch page going to LL-HLS,
  // whose picture is the room composited).
  reset() {
    this.room = null;
    for (const [i, t] of this.tiles.entries()) if (t && i > 0) this.show(t, false);
    if (this.tiles[0]) { this.tiles[0].name.textContent = ''; this.tiles[0].el.classList.remove('speaking', 'video-off'); }
    this.box.dataset.count = '1';
  }

  tile(slot) {
    if (this.tiles[slot]) return this.tiles[slot];
    let el = slot === 0 ? this.first : null;
    if (!el) {
      el = document.createElement('div');
      el.className = 'tile';
      el.hidden = true;
      el.append(document.createElement('video'));
      const label = document.createElement('span');
      label.className = 'tile-name';
      el.append(label);
      this.box.append(el);
    }
    const video = el.querySelector('video');
    video.autoplay = true; video.playsInline = true; video.muted = this.muted;
    const t = { el, video, name: el.querySelector('.tile-name'), stream: new MediaStream(), frames: 0, width: 0, height: 0, id: '' };
    // The stream goes on the <video> only while the tile shows someone:
    // an element on the tracks of an empty slot, which never play, would
    // hold the page's load event back for good.
    const count = (_, meta) => { t.frames++; t.width = meta.width; t.height = meta.height; video.requestVideoFrameCallback(count); };
    if (video.requestVideoFrameCallback) video.requestVideoFrameCallback(count);
    this.tiles[slot] = t;
    return t;
  }

  // render lays the tiles out for a room announcement (WHEP event "room",
  // or the data channel's {"type": "room"}).
  render(room) {
    this.room = room;
    if (this.onroom) this.onroom(room);
    let shown = 0;
    for (const s of room.slots) {
      const b = s.broadcaster;
      const t = this.tile(s.slot);
      if (!b || b.id === this.skip) { this.show(t, false); t.id = ''; continue; }
      shown++;
      this.show(t, true);
      t.id = b.id;
      t.name.textContent = (b.name || b.id) + (b.role === 'host' ? ' · host' : '') +
        (b.audio_muted ? ' · muted' : '') + (b.video_muted ? ' · camera off' : '') +
        (b.state === 'reconnecting' ? ' · reconnecting…' : '');
      t.el.classList.toggle('speaking', room.speaker === b.id);
      t.el.classList.toggle('video-off', !!b.video_muted);
      t.el.dataset.id = b.id;
    }
    this.box.dataset.count = String(Math.max(shown, 1));
  }

  // unmute lets every tile's audio play (after a click: autoplay rules).
  unmute() {
    this.muted = false;
    for (const t of this.tiles) if (t) { t.video.muted = false; t.video.play().catch(() => {}); }
  }

  // state is what a test reads: each shown tile's name, frames and size.
  state() {
    return this.tiles.filter((t) => t && !t.el.hidden).map((t) => ({
      id: t.id, name: t.name.textContent, frames: t.frames, width: t.width, height: t.height,
      speaking: t.el.classList.contains('speaking'),
    }));
  }
}

// watchRoom plays stream's room into a Tiles, skipping broadcaster skip:
// the go-live and guest pages seeing the others. It returns a stop
// function.
export async function watchRoom(stream, tiles) {
  const pc = new RTCPeerConnection();
  addSlots(pc);
  pc.ontrack = (e) => tiles.addTrack(slotOf(pc, e.transceiver), e.track);
  // The page's own broadcaster is not sent back to it.
  const skip = tiles.skip ? '?skip=' + encodeURIComponent(tiles.skip) : '';
  const session = await post('/whep/' + encodeURIComponent(stream) + skip, pc);
  const url = session.links['urn:ietf:params:whep:ext:core:server-sent-events'];
  let events = null;
  if (url) {
    const full = new URL(url, session.location).toString();
    const res = await fetch(full, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '["room"]' });
    if (res.status === 201) {
      events = new EventSource(new URL(res.headers.get('Location'), full));
      events.addEventListener('room', (e) => tiles.render(JSON.parse(e.data)));
    }
  }
  return () => {
    if (events) events.close();
    remove(session.location);
    pc.close();
  };
}
