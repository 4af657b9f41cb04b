package registry

import (
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/exportreport/exportreport/pkg/insecureregistry"
)

// DefaultIdleTimeout is how long a registry connection may go without a
// byte moving either way before it is given up (Options.IdleTimeout).
const DefaultIdleTimeout = 2 * time.Minute

// NewTransport returns base, or when nil a clone of
// remote.DefaultTransport that verifies TLS for every host except the
// insecure ones. TLS verification is switched off per request host, never
// globally; SSL_CERT_FILE and SSL_CERT_DIR work through Go's system roots.
// Its connections fail after idle (if > 0) without a byte read or written
// (a stalled registry): the request then fails like a reset, and is
// retried or fails the export.
func NewTransport(base http.RoundTripper, insecureHosts insecureregistry.Hosts, idle time.Duration) http.RoundTripper {
	if base != nil {
		return base
	}
	secure := remote.DefaultTransport.(*http.Transport).Clone()
	if idle > 0 {
		dial := secure.DialContext
		secure.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := dial(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return &idleConn{Conn: c, idle: idle}, nil
		}
	}
	if len(insecureHosts) == 0 {
		return secure
	}
	return &hostTLSTransport{secure: secure, unverified: insecureregistry.Unverified(secure), insecure: insecureHosts}
}

// idleConn fails once no byte has moved in either direction for idle. Every
// Read or Write pushes both deadlines back, so a long upload (the server
// silent, its response Read pending) is progress, and so is a long
// download; a registry that stops reading or answering is not.
type idleConn struct {
	net.Conn
	idle time.Duration
}

func (c *idleConn) Read(b []byte) (int, error) {
	if err := c.Conn.SetDeadline(time.Now().Add(c.idle)); err != nil {
		return 0, err
	}
	n, err := c.Conn.Read(b)
	if n > 0 {
		_ = c.Conn.SetDeadline(time.Now().Add(c.idle))
	}
	return n, err
}

func (c *idleConn) Write(b []byte) (int, error) {
	if err := c.Conn.SetDeadline(time.Now().Add(c.idle)); err != nil {
		return 0, err
	}
	n, err := c.Conn.Write(b)
	if n > 0 {
		_ = c.Conn.SetDeadline(time.Now().Add(c.idle))
	}
	return n, err
}

// idleChunk is how much of a file ReadFrom hands the kernel at a time:
// each chunk pushes the idle deadline back, so a registry that reads less
// than this in idle counts as stalled.
const idleChunk = 1 << 20

// ReadFrom lets the kernel copy a file to the connection (sendfile), as
// *net.TCPConn does when net/http streams a request body from an *os.File
// (a blob in an OCI layout): without it every byte would be copied through
// user space. It goes idleChunk bytes at a time, each with a fresh
// deadline. Any other reader is copied through Write.
func (c *idleConn) ReadFrom(r io.Reader) (int64, error) {
	rf, ok := c.Conn.(io.ReaderFrom)
	src, left := r, int64(-1)
	lr, limited := r.(*io.LimitedReader)
	if limited {
		src, left = lr.R, lr.N
	}
	if _, file := src.(syscall.Conn); !ok || !file {
		return io.Copy(writerOnly{c}, r)
	}
	var total int64
	for left != 0 {
		n := int64(idleChunk)
		if left > 0 {
			n = min(n, left)
		}
		if err := c.Conn.SetDeadline(time.Now().Add(c.idle)); err != nil {
			return total, err
		}
		w, err := rf.ReadFrom(&io.LimitedReader{R: src, N: n})
		total += w
		if left > 0 {
			left -= w
		}
		if limited {
			lr.N = left
		}
		if err != nil || w < n {
			return total, err
		}
	}
	return total, nil
}

// writerOnly hides ReadFrom, so that io.Copy goes through Write.
type writerOnly struct{ io.Writer }

// hostTLSTransport sends requests to insecure hosts through a transport
// that skips TLS verification, and all others through a verifying one.
type hostTLSTransport struct {
	secure, unverified http.RoundTripper
	insecure           insecureregistry.Hosts
}

func (t *hostTLSTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.insecure.Match(req.URL.Host) {
		return t.unverified.RoundTrip(req)
	}
	return t.secure.RoundTrip(req)
}

// maxRetryAfter caps how long one Retry-After makes a request wait, so that
// a registry asking for minutes cannot stall an export: a request that
// keeps getting 429 or 503 with a long Retry-After fails after at most
// (retry tries - 1) waits of this (docs/reliability.md gives the bounds),
// and the export's time budget (Options.Timeout) bounds them all.
const maxRetryAfter = 10 * time.Second

// retryHint is where retryAfterTransport leaves a registry's Retry-After
// for the retry loop above it (Retry), which puts a fresh one into
// the context of each try and waits at least that long before the next.
type retryHint struct {
	mu   sync.Mutex
	wait time.Duration
}

type retryHintKey struct{}

func (h *retryHint) set(d time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.wait = max(h.wait, d)
}

func (h *retryHint) get() time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.wait
}

// WithRetryAfter makes a 429 or 503 response carrying Retry-After delay the
// next try of its request, capped at maxRetryAfter. Under export-step's own
// retry loop (a retryHint in the request's context) it only tells the loop,
// which waits; it never retries anything itself. Under go-containerregistry's
// retries (an index push, the chunked fallback, reading a registry source),
// which know nothing of Retry-After, the response is held back that long,
// but never past the context's deadline (the export's time budget), and a
// cancelled request ends the wait.
func WithRetryAfter(next http.RoundTripper) http.RoundTripper {
	return &retryAfterTransport{next: next, now: time.Now}
}

type retryAfterTransport struct {
	next http.RoundTripper
	now  func() time.Time
}

func (t *retryAfterTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(req)
	if err != nil || (resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode != http.StatusServiceUnavailable) {
		return resp, err
	}
	wait := min(retryAfter(resp.Header.Get("Retry-After"), t.now()), maxRetryAfter)
	if wait <= 0 {
		return resp, nil
	}
	ctx := req.Context()
	if hint, ok := ctx.Value(retryHintKey{}).(*retryHint); ok {
		hint.set(wait)
		return resp, nil
	}
	if deadline, ok := ctx.Deadline(); ok && t.now().Add(wait).After(deadline) {
		return resp, nil // the budget ends first: fail now, not then
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-timer.C:
		return resp, nil
	case <-ctx.Done():
		resp.Body.Close()
		return nil, ctx.Err()
	}
}

// retryAfter parses a Retry-After value: delay seconds or an HTTP date.
// Anything else, or a time in the past, is no wait.
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		if secs > int64(maxRetryAfter/time.Second) {
			return maxRetryAfter
		}
		return time.Duration(secs) * time.Second
	}
	if at, err := http.ParseTime(v); err == nil {
		return at.Sub(now)
	}
	return 0
}
