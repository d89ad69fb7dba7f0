// Package relay is the mesh of nodes that share a Redis: the directory of
// nodes (their address, capacity and load, kept alive by heartbeats) and
// of which node each live stream is published on, which placement reads
// to send a viewer to a node that has the stream. Node-to-node media
// relay comes next.
package relay
