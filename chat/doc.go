// Package chat is Glint's chat: one ordered log per stream of messages,
// reaction bursts, badge purchases and moderation actions, delivered to
// WebRTC peers over data channels and to everyone else over WebSocket, and
// shown in step with each viewer's playhead. Order comes from one source of
// truth, a Backplane (memory on one node, Redis across nodes). It knows
// nothing of media; the server tells it whether a stream is live and what
// its stream clock reads through small interfaces.
package chat
