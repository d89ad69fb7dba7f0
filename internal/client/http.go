package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
)

// Resource is a WHIP or WHEP session resource created by a POST.
type Resource struct {
	URL    string // absolute session URL (from Location)
	ETag   string
	Answer string
	Links  []string
	Token  string
	HTTP   *http.Client
}

// StatusError is a non-success HTTP answer.
type StatusError struct {
	Code       int
	Body       string
	RetryAfter string
}

func (e *StatusError) Error() string { return fmt.Sprintf("HTTP %d: %s", e.Code, e.Body) }

// Post sends an SDP offer to a WHIP or WHEP endpoint (RFC 9725 §4.2).
func Post(ctx context.Context, hc *http.Client, endpoint, token, offer string) (*Resource, error) {
	if hc == nil {
		hc = http.DefaultClient
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewBufferString(offer))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/sdp")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusCreated {
		return nil, &StatusError{Code: resp.StatusCode, Body: string(body), RetryAfter: resp.Header.Get("Retry-After")}
	}
	loc, err := resp.Location()
	if err != nil {
		return nil, fmt.Errorf("201 without Location: %w", err)
	}
	return &Resource{
		URL: loc.String(), ETag: resp.Header.Get("ETag"), Answer: string(body),
		Links: resp.Header.Values("Link"), Token: token, HTTP: hc,
	}, nil
}

// Patch sends a trickle-ice-sdpfrag to the session (RFC 8840).
func (r *Resource) Patch(ctx context.Context, frag, ifMatch string) (*http.Response, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPatch, r.URL, bytes.NewBufferString(frag))
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Content-Type", "application/trickle-ice-sdpfrag")
	if ifMatch != "" {
		req.Header.Set("If-Match", ifMatch)
	}
	if r.Token != "" {
		req.Header.Set("Authorization", "Bearer "+r.Token)
	}
	resp, err := r.HTTP.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp, body, nil
}

// Delete ends the session.
func (r *Resource) Delete(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, r.URL, nil)
	if err != nil {
		return err
	}
	if r.Token != "" {
		req.Header.Set("Authorization", "Bearer "+r.Token)
	}
	resp, err := r.HTTP.Do(req)
	if err != nil {
		return err
	}
	_ = resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return &StatusError{Code: resp.StatusCode}
	}
	return nil
}

// Resolve turns a possibly relative link into an absolute URL.
func (r *Resource) Resolve(ref string) (string, error) {
	base, err := url.Parse(r.URL)
	if err != nil {
		return "", err
	}
	u, err := base.Parse(ref)
	if err != nil {
		return "", err
	}
	return u.String(), nil
}

// IsStatus reports whether err is an HTTP answer with the given code.
func IsStatus(err error, code int) bool {
	var se *StatusError
	return errors.As(err, &se) && se.Code == code
}
