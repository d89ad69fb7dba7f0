// Package archtest holds tests that keep Glint's shape: imports point one
// way (cmd → services → media core), and the media core does no I/O.
package archtest
