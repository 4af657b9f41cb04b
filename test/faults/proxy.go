// Package faults puts a reverse proxy in front of a registry (the real
// Distribution registry in tests) that answers chosen requests with HTTP
// status faults instead of forwarding them: N times 503, 429 with
// Retry-After, a persistent 5xx, a 401. It records every request it sees, so
// tests can count retries and measure the time between them.
package faults

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// Rule answers matching requests with Status instead of forwarding them.
type Rule struct {
	// Method matches the request method; empty matches any.
	Method string
	// Path matches when the URL path contains it; empty matches any.
	Path string
	// Query matches when the raw URL query contains it; empty matches any
	// (e.g. "mount=sha256:..." picks one blob's upload).
	Query string
	// Status is the HTTP status sent back; 0 forwards the request (after
	// Before).
	Status int
	// Before, when set, runs before the request is answered or forwarded
	// (e.g. restart the registry in the middle of a push).
	Before func()
	// Header is added to the fault response (e.g. Retry-After).
	Header http.Header
	// Times is how many matching requests get the fault; 0 means all.
	Times int
	// Code is the OCI error code in the JSON body; empty means one that
	// fits Status (UNAVAILABLE, TOOMANYREQUESTS, UNAUTHORIZED, ...).
	Code string
}

func (r *Rule) code() string {
	if r.Code != "" {
		return r.Code
	}
	switch {
	case r.Status == http.StatusTooManyRequests:
		return "TOOMANYREQUESTS"
	case r.Status == http.StatusUnauthorized:
		return "UNAUTHORIZED"
	case r.Status == http.StatusForbidden:
		return "DENIED"
	case r.Status == http.StatusNotFound:
		return "NAME_UNKNOWN"
	case r.Status >= 500:
		return "UNAVAILABLE"
	default:
		return "MANIFEST_INVALID"
	}
}

func (r *Rule) matches(req *http.Request) bool {
	return (r.Method == "" || r.Method == req.Method) && strings.Contains(req.URL.Path, r.Path) &&
		strings.Contains(req.URL.RawQuery, r.Query)
}

// Request is one request the proxy saw, and what it answered.
type Request struct {
	Method, Path string
	Query        string // the raw URL query
	Status       int    // what the client got
	Fault        bool
	Start, End   time.Time
	// Authorization reports whether the request carried that header (its
	// value is never recorded).
	Authorization bool
}

// Proxy is a running fault-injecting reverse proxy.
type Proxy struct {
	srv   *httptest.Server
	proxy *httputil.ReverseProxy

	mu       sync.Mutex
	rules    []*rule
	requests []Request
}

type rule struct {
	Rule
	left int // -1: forever
}

// Start runs a proxy on 127.0.0.1 forwarding to target (e.g.
// "http://127.0.0.1:5000") through transport (nil: http.DefaultTransport).
// The Host header is passed on unchanged, so the registry's upload Location
// URLs point at the proxy. It is closed when the test ends.
func Start(t testing.TB, target string, transport http.RoundTripper) *Proxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatalf("faults: proxy target %q: %v", target, err)
	}
	p := &Proxy{}
	p.proxy = &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(u)
			r.Out.Host = r.In.Host
		},
		Transport: transport,
	}
	p.srv = httptest.NewServer(http.HandlerFunc(p.serve))
	t.Cleanup(p.srv.Close)
	return p
}

// Host is "127.0.0.1:PORT", the registry part of references through the proxy.
func (p *Proxy) Host() string { return strings.TrimPrefix(p.srv.URL, "http://") }

// Add appends a rule; the first matching rule with faults left applies.
func (p *Proxy) Add(r Rule) {
	p.mu.Lock()
	defer p.mu.Unlock()
	left := r.Times
	if left == 0 {
		left = -1
	}
	p.rules = append(p.rules, &rule{Rule: r, left: left})
}

// Reset removes every rule and forgets the recorded requests.
func (p *Proxy) Reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rules, p.requests = nil, nil
}

// Requests returns the requests seen so far, in arrival order.
func (p *Proxy) Requests() []Request {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Request(nil), p.requests...)
}

// Faults counts the requests answered with a fault so far.
func (p *Proxy) Faults() int {
	n := 0
	for _, r := range p.Requests() {
		if r.Fault {
			n++
		}
	}
	return n
}

// fault returns the rule to apply to req, consuming one of its faults.
func (p *Proxy) fault(req *http.Request) *Rule {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, r := range p.rules {
		if r.left != 0 && r.matches(req) {
			if r.left > 0 {
				r.left--
			}
			return &r.Rule
		}
	}
	return nil
}

func (p *Proxy) serve(w http.ResponseWriter, req *http.Request) {
	rec := Request{Method: req.Method, Path: req.URL.Path, Query: req.URL.RawQuery, Start: time.Now(),
		Authorization: req.Header.Get("Authorization") != ""}
	defer func() {
		rec.End = time.Now()
		p.mu.Lock()
		p.requests = append(p.requests, rec)
		p.mu.Unlock()
	}()
	f := p.fault(req)
	if f != nil && f.Before != nil {
		f.Before()
	}
	if f != nil && f.Status != 0 {
		rec.Fault, rec.Status = true, f.Status
		for k, vs := range f.Header {
			for _, v := range vs {
				w.Header().Add(k, v)
			}
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(f.Status)
		_, _ = w.Write([]byte(`{"errors":[{"code":"` + f.code() + `","message":"injected fault"}]}`))
		return
	}
	sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
	p.proxy.ServeHTTP(sw, req)
	rec.Status = sw.status
}

type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (s *statusWriter) WriteHeader(code int) {
	if !s.wrote {
		s.status, s.wrote = code, true
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
