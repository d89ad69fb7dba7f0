// Shared helpers for Glint's pages: WHIP/WHEP signalling (RFC 9725) and
// stats formatting.

export async function waitGathered(pc, ms = 2000) {
  if (pc.iceGatheringState === 'complete') return;
  await new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    pc.addEventListener('icegatheringstatechange', () => {
      if (pc.iceGatheringState === 'complete') { clearTimeout(t); resolve(); }
    });
  });
}

// post sends the offer and returns {location, etag, links, answer}. An
// error carries .status, .retryAfter and .links.
export async function post(endpoint, pc, token) {
  const url = new URL(endpoint, location.href).toString();
  const offer = await pc.createOffer();
  await pc.setLocalDescription(offer);
  await waitGathered(pc);
  const headers = { 'Content-Type': 'application/sdp' };
  if (token) headers.Authorization = 'Bearer ' + token;
  const res = await fetch(url, { method: 'POST', headers, body: pc.localDescription.sdp });
  if (res.status !== 201) {
    let detail = res.statusText;
    try { detail = (await res.json()).detail || detail; } catch (_) { /* not JSON */ }
    const err = new Error(`${res.status}: ${detail}`);
    err.status = res.status;
    err.retryAfter = Number(res.headers.get('Retry-After') || 0);
    err.links = parseLinks(res.headers.get('Link') || '');
    throw err;
  }
  const answer = await res.text();
  await pc.setRemoteDescription({ type: 'answer', sdp: answer });
  // After a redirect (a mesh sending the viewer to another node) the
  // session lives where the offer landed: resolve against that.
  const base = res.url || url;
  const links = parseLinks(res.headers.get('Link') || '');
  for (const rel of Object.keys(links)) links[rel] = new URL(links[rel], base).toString();
  return {
    location: new URL(res.headers.get('Location'), base).toString(),
    etag: res.headers.get('ETag'),
    links,
    base: new URL(base).origin,
  };
}

// parseLinks reads a Link header into {rel: url}.
export function parseLinks(header) {
  const out = {};
  for (const part of header.split(/,(?=\s*<)/)) {
    const m = part.match(/<([^>]+)>\s*;\s*rel="([^"]+)"/);
    if (m) out[m[2]] = m[1];
  }
  return out;
}

export async function remove(location, token) {
  const headers = {};
  if (token) headers.Authorization = 'Bearer ' + token;
  try { await fetch(location, { method: 'DELETE', headers }); } catch (_) { /* gone anyway */ }
}

export function fmtBitrate(bps) {
  if (!bps) return '–';
  if (bps >= 1e6) return (bps / 1e6).toFixed(2) + ' Mbit/s';
  return Math.round(bps / 1e3) + ' kbit/s';
}

export function setStat(id, text) {
  const el = document.getElementById(id);
  if (el) el.textContent = text;
}
