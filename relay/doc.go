// Package relay is the mesh of nodes that share a Redis: the directory of
// nodes (their address, capacity and load, kept alive by heartbeats) and
// of which node each live stream is published on, and the node-to-node
// relay that pulls every layer of a stream from its origin, once, into a
// node that has viewers for it.
package relay
