package export

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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
			rt := withRetryAfter(respond(tc.status, tc.retryAfter))
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

	t.Run("cancelled while waiting", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		rt := withRetryAfter(roundTripFunc(func(r *http.Request) (*http.Response, error) {
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
func TestManifestBlobRetry(t *testing.T) {
	tests := []struct {
		name      string
		method    string
		path      string
		status    int
		code      string
		failures  int // answers with the error before a 201
		wantSends int
		wantFinal int
	}{
		{name: "blob unknown twice, then created", method: "PUT", path: "/v2/r/manifests/t", status: 400, code: "MANIFEST_BLOB_UNKNOWN", failures: 2, wantSends: 3, wantFinal: 201},
		{name: "blob unknown for good", method: "PUT", path: "/v2/r/manifests/t", status: 400, code: "MANIFEST_BLOB_UNKNOWN", failures: 100, wantSends: 1 + manifestBlobUnknownRetries, wantFinal: 400},
		{name: "manifest invalid is final", method: "PUT", path: "/v2/r/manifests/t", status: 400, code: "MANIFEST_INVALID", failures: 100, wantSends: 1, wantFinal: 400},
		{name: "unauthorized is final", method: "PUT", path: "/v2/r/manifests/t", status: 401, code: "MANIFEST_BLOB_UNKNOWN", failures: 100, wantSends: 1, wantFinal: 401},
		{name: "not a manifest PUT", method: "PUT", path: "/v2/r/blobs/uploads/x", status: 400, code: "MANIFEST_BLOB_UNKNOWN", failures: 100, wantSends: 1, wantFinal: 400},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var bodies []string
			next := roundTripFunc(func(r *http.Request) (*http.Response, error) {
				b, err := io.ReadAll(r.Body)
				assert.NilError(t, err)
				bodies = append(bodies, string(b))
				status, body := 201, ""
				if len(bodies) <= tc.failures {
					status, body = tc.status, `{"errors":[{"code":"`+tc.code+`"}]}`
				}
				return &http.Response{StatusCode: status, Body: io.NopCloser(strings.NewReader(body)), Request: r}, nil
			})
			rt := &manifestBlobRetryTransport{next: next, wait: time.Millisecond}
			req, err := http.NewRequest(tc.method, "http://registry.test"+tc.path, strings.NewReader("manifest"))
			assert.NilError(t, err)
			resp, err := rt.RoundTrip(req)
			assert.NilError(t, err)
			assert.Check(t, is.Equal(resp.StatusCode, tc.wantFinal))
			assert.Check(t, is.Len(bodies, tc.wantSends))
			for _, b := range bodies {
				assert.Check(t, is.Equal(b, "manifest"))
			}
			if tc.wantFinal != 201 {
				b, err := io.ReadAll(resp.Body)
				assert.NilError(t, err)
				assert.Check(t, is.Contains(string(b), tc.code), "the error body is passed on")
			}
		})
	}
}

// idleConn.ReadFrom hands a file to the kernel in chunks: everything
// arrives, the LimitedReader's count is kept, and a peer that stops
// reading fails the copy after the idle timeout instead of hanging.
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
