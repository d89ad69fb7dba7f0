// Package httpx is the HTTP plumbing signaling and chat share: RFC 9457
// problem+json errors, JSON answers and bounded request bodies.
package httpx
