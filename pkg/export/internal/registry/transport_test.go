package registry

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		value string
		want  time.Duration
	}{
		{value: "", want: 0},
		{value: "2", want: 2 * time.Second},
		{value: " 3 ", want: 3 * time.Second},
		{value: "0", want: 0},
		{value: "-5", want: 0},
		{value: "3600", want: maxRetryAfter},
		{value: "99999999999999999999", want: 0}, // not an int64: ignored
		{value: now.Add(4 * time.Second).Format(http.TimeFormat), want: 4 * time.Second},
		{value: now.Add(-time.Minute).Format(http.TimeFormat), want: -time.Minute},
		{value: "soon", want: 0},
	}
	for _, tc := range tests {
		t.Run(tc.value, func(t *testing.T) {
			assert.Check(t, is.Equal(retryAfter(tc.value, now), tc.want))
		})
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// The transport holds a 429/503 response back for Retry-After, passes
// everything else through at once, and stops waiting when the request is
// cancelled.
func TestRetryAfterTransport(t *testing.T) {
	respond := func(status int, retryAfter string) http.RoundTripper {
		return roundTripFunc(func(r *http.Request) (*http.Response, error) {
			h := http.Header{}
			if retryAfter != "" {
				h.Set("Retry-After", retryAfter)
			}
			return &http.Response{StatusCode: status, Header: h, Body: io.NopCloser(strings.NewReader("")), Request: r}, nil
		})
	}
	tests := []struct {
		name       string
		status     int
		retryAfter string
		minWait    time.Duration
	}{
		{name: "200 with Retry-After passes at once", status: 200, retryAfter: "1"},
		{name: "500 with Retry-After passes at once", status: 500, retryAfter: "1"},
		{name: "429 without Retry-After passes at once", status: 429},
		{name: "429 waits", status: 429, retryAfter: "1", minWait: time.Second},
		{name: "503 waits", status: 503, retryAfter: "1", minWait: time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rt := WithRetryAfter(respond(tc.status, tc.retryAfter))
			req, err := http.NewRequest(http.MethodGet, "http://registry.test/v2/", nil)
			assert.NilError(t, err)
			start := time.Now()
			resp, err := rt.RoundTrip(req)
			took := time.Since(start)
			assert.NilError(t, err)
			assert.Check(t, is.Equal(resp.StatusCode, tc.status))
			if tc.minWait == 0 {
				assert.Check(t, took < 500*time.Millisecond, "held back %s", took)
			} else {
				assert.Check(t, took >= tc.minWait, "returned after %s, Retry-After %s", took, tc.minWait)
			}
		})
	}

	t.Run("under export-step's retry loop: not held, the loop is told", func(t *testing.T) {
		hint := &retryHint{}
		rt := WithRetryAfter(respond(429, "7"))
		req, err := http.NewRequestWithContext(context.WithValue(context.Background(), retryHintKey{}, hint), http.MethodGet, "http://registry.test/v2/", nil)
		assert.NilError(t, err)
		start := time.Now()
		_, err = rt.RoundTrip(req)
		assert.NilError(t, err)
		assert.Check(t, time.Since(start) < time.Second, "held back")
		assert.Equal(t, hint.get(), 7*time.Second)
	})

	t.Run("a wait past the deadline is not begun", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		rt := WithRetryAfter(respond(503, "5"))
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://registry.test/v2/", nil)
		assert.NilError(t, err)
		start := time.Now()
		resp, err := rt.RoundTrip(req)
		assert.NilError(t, err)
		assert.Check(t, is.Equal(resp.StatusCode, 503))
		assert.Check(t, time.Since(start) < 500*time.Millisecond, "held back")
	})

	t.Run("cancelled while waiting", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		rt := WithRetryAfter(roundTripFunc(func(r *http.Request) (*http.Response, error) {
			cancel() // the caller gives up as the response arrives
			return respond(429, "10").RoundTrip(r)
		}))
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://registry.test/v2/", nil)
		assert.NilError(t, err)
		start := time.Now()
		_, err = rt.RoundTrip(req)
		assert.Check(t, errors.Is(err, context.Canceled), "got %v", err)
		assert.Check(t, time.Since(start) < time.Second)
	})
}

// A manifest PUT answered 400 MANIFEST_BLOB_UNKNOWN is re-sent with the
// same body, at most manifestBlobUnknownRetries times; other 4xx answers,
// and other requests, are sent once.
// TestIsTransient: what the one retry layer (and go-containerregistry's
// retries, given the same predicate) tries again. MANIFEST_BLOB_UNKNOWN is
// retried on a manifest PUT only (Distribution's blob-link race, see
// manifestBlobUnknown); every other 4xx is final.
func TestIsTransient(t *testing.T) {
	checked := func(method, path string, status int, code string) error {
		req, err := http.NewRequest(method, "http://registry.test"+path, nil)
		assert.NilError(t, err)
		body := `{"errors":[{"code":"` + code + `","message":"x"}]}`
		return transport.CheckError(&http.Response{StatusCode: status, Body: io.NopCloser(strings.NewReader(body)), Request: req}, http.StatusCreated)
	}
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"503", checked("PUT", "/v2/r/manifests/t", 503, "UNAVAILABLE"), true},
		{"429", checked("POST", "/v2/r/blobs/uploads/", 429, "TOOMANYREQUESTS"), true},
		{"manifest PUT: blob unknown", checked("PUT", "/v2/r/manifests/t", 400, "MANIFEST_BLOB_UNKNOWN"), true},
		{"manifest PUT: manifest invalid", checked("PUT", "/v2/r/manifests/t", 400, "MANIFEST_INVALID"), false},
		{"manifest PUT: 401 whatever the code", checked("PUT", "/v2/r/manifests/t", 401, "MANIFEST_BLOB_UNKNOWN"), false},
		{"blob PUT: blob unknown", checked("PUT", "/v2/r/blobs/uploads/x", 400, "MANIFEST_BLOB_UNKNOWN"), false},
		{"403", checked("POST", "/v2/r/blobs/uploads/", 403, "DENIED"), false},
		{"reset", fmt.Errorf("send: %w", syscall.ECONNRESET), true},
		{"reading the source", &sourceError{io.ErrUnexpectedEOF}, false},
		{"nil", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, IsTransient(tc.err), tc.want, "%v", tc.err)
		})
	}
}

// TestRetryTransient (Retry): tries, waits (Retry-After when longer than the
// backoff), and the time budget: a wait that would end after the context's
// deadline is not begun.
func TestRetryTransient(t *testing.T) {
	b := remote.Backoff{Duration: time.Millisecond, Factor: 2, Steps: 5}
	unavailable := &transport.Error{StatusCode: http.StatusServiceUnavailable}
	t.Run("a transient error: Steps tries", func(t *testing.T) {
		tries := 0
		err := Retry(context.Background(), b, func(context.Context) error { tries++; return unavailable })
		assert.Equal(t, err, error(unavailable))
		assert.Equal(t, tries, 5)
	})
	t.Run("a final error: one try", func(t *testing.T) {
		tries := 0
		err := Retry(context.Background(), b, func(context.Context) error {
			tries++
			return &transport.Error{StatusCode: http.StatusUnauthorized}
		})
		assert.ErrorContains(t, err, "401")
		assert.Equal(t, tries, 1)
	})
	t.Run("Retry-After longer than the budget: given up at once", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		tries := 0
		start := time.Now()
		err := Retry(ctx, b, func(ctx context.Context) error {
			tries++
			ctx.Value(retryHintKey{}).(*retryHint).set(2 * time.Minute)
			return unavailable
		})
		assert.Assert(t, errors.Is(err, ErrBudget), "%v", err)
		assert.Assert(t, errors.Is(err, unavailable))
		assert.Equal(t, tries, 1)
		assert.Assert(t, time.Since(start) < 10*time.Second)
	})
	t.Run("a fresh hint each try", func(t *testing.T) {
		var hints []*retryHint
		_ = Retry(context.Background(), b, func(ctx context.Context) error {
			hints = append(hints, ctx.Value(retryHintKey{}).(*retryHint))
			return unavailable
		})
		assert.Equal(t, len(hints), 5)
		assert.Assert(t, hints[0] != hints[1])
	})
}

func TestIdleConnReadFrom(t *testing.T) {
	const size = 3*idleChunk + 5
	data := make([]byte, size)
	_, err := rand.New(rand.NewSource(1)).Read(data)
	assert.NilError(t, err)
	path := filepath.Join(t.TempDir(), "blob")
	assert.NilError(t, os.WriteFile(path, data, 0o644))

	for _, tc := range []struct {
		name   string
		reader func(f *os.File) io.Reader
		want   int64
	}{
		{name: "file", reader: func(f *os.File) io.Reader { return f }, want: size},
		{name: "limited file", reader: func(f *os.File) io.Reader { return &io.LimitedReader{R: f, N: size - 7} }, want: size - 7},
		{name: "not a file", reader: func(f *os.File) io.Reader { return bufio.NewReader(f) }, want: size},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			assert.NilError(t, err)
			t.Cleanup(func() { ln.Close() })
			got := make(chan []byte, 1)
			go func() {
				c, err := ln.Accept()
				if err != nil {
					got <- nil
					return
				}
				defer c.Close()
				b, _ := io.ReadAll(c)
				got <- b
			}()
			raw, err := net.Dial("tcp", ln.Addr().String())
			assert.NilError(t, err)
			c := &idleConn{Conn: raw, idle: time.Minute}
			f, err := os.Open(path)
			assert.NilError(t, err)
			defer f.Close()
			r := tc.reader(f)
			n, err := c.ReadFrom(r)
			assert.NilError(t, err)
			assert.Equal(t, n, tc.want)
			if lr, ok := r.(*io.LimitedReader); ok {
				assert.Equal(t, lr.N, int64(0))
			}
			assert.NilError(t, c.Close())
			assert.Assert(t, bytes.Equal(<-got, data[:tc.want]))
		})
	}

	t.Run("peer stops reading", func(t *testing.T) {
		big := filepath.Join(t.TempDir(), "big")
		assert.NilError(t, os.WriteFile(big, nil, 0o644))
		assert.NilError(t, os.Truncate(big, 256<<20)) // sparse; more than any socket buffer
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		assert.NilError(t, err)
		t.Cleanup(func() { ln.Close() })
		accepted := make(chan net.Conn, 1)
		go func() {
			c, _ := ln.Accept()
			accepted <- c // never read
		}()
		raw, err := net.Dial("tcp", ln.Addr().String())
		assert.NilError(t, err)
		t.Cleanup(func() { raw.Close() })
		t.Cleanup(func() {
			if c := <-accepted; c != nil {
				c.Close()
			}
		})
		c := &idleConn{Conn: raw, idle: 200 * time.Millisecond}
		f, err := os.Open(big)
		assert.NilError(t, err)
		defer f.Close()
		start := time.Now()
		_, err = c.ReadFrom(f)
		assert.Assert(t, errors.Is(err, os.ErrDeadlineExceeded), "%v", err)
		assert.Assert(t, time.Since(start) < 30*time.Second)
	})
}
