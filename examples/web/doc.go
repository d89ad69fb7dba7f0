// Package web embeds Glint's browser pages: the stream list, the go-live
// page (WHIP from the camera, with simulcast and a codec choice) and the
// watch page (WHEP playback with layer, bitrate, resolution and latency,
// and the chat panel of chat.js, timed to the frame on screen, with a tile
// per Live Room broadcaster), the guest page a Live Room invite opens, and
// the replay page of a recording (its chapters and the chat at stream
// time).
// They are plain HTML and JavaScript modules: no build step.
package web

import "embed"

// FS holds the pages and their scripts.
//
//go:embed *.html *.js *.css *.txt
var FS embed.FS
