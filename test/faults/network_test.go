package faults

import (
	"context"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	exportpkg "github.com/exportreport/exportreport/pkg/export"
	"github.com/exportreport/exportreport/test/distribution"
)

// newBigLayout is newLayout with one 2 MiB layer (random, so gzip cannot
// shrink it): big enough to reset a connection in the middle of its upload.
func newBigLayout(t *testing.T) (string, v1.Hash) {
	t.Helper()
	img, err := random.Image(2<<20, 1)
	assert.NilError(t, err)
	dir := t.TempDir()
	p, err := layout.Write(dir, empty.Index)
	assert.NilError(t, err)
	assert.NilError(t, p.AppendImage(img))
	d, err := img.Digest()
	assert.NilError(t, err)
	return dir, d
}

// Transport faults under TCP: the connection reset in the middle of a blob
// upload, twice, and latency on every chunk both ways: the export succeeds
// with the right digest.
func TestNetworkFaultsSurvived(t *testing.T) {
	t.Parallel()
	reg := distribution.Start(t)
	src, want := newBigLayout(t)

	tests := []struct {
		name       string
		setup      func(p *TCPProxy)
		wantResets int
	}{
		{name: "reset mid-blob twice", setup: func(p *TCPProxy) { p.ResetAfter(512<<10, 2) }, wantResets: 2},
		{name: "20ms latency per chunk", setup: func(p *TCPProxy) { p.SetLatency(20 * time.Millisecond) }},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			proxy := StartTCP(t, reg.Host())
			tc.setup(proxy)
			reportPath := filepath.Join(t.TempDir(), "report.toml")
			writeStale(t, reportPath)
			tag := proxy.Host() + "/network/app" + string(rune('a'+i)) + ":v1"
			res := export(t, src, reportPath, proxy.Host(), nil, tag)
			assert.Equal(t, res.code, 0, res.stderr)
			assert.Check(t, is.Equal(strings.TrimSpace(res.stdout), want.String()))
			assert.Check(t, is.Equal(proxy.Resets(), tc.wantResets))
			assertPushed(t, reg, reportPath, tag, want)
		})
	}
}

// A registry that accepts connections and then says nothing: with a 1s
// idle timeout the export fails within stallBound, with no report (a stale
// one removed). With the default idle timeout (2 min) the same bound scales
// as docs/reliability.md says.
func TestStalledRegistryBounded(t *testing.T) {
	t.Parallel()
	reg := distribution.Start(t)
	src, _ := newLayout(t)

	const idle = time.Second
	const stallBound = 30 * time.Second
	tests := []struct {
		name  string
		stall func(p *TCPProxy, f *Proxy)
	}{
		{name: "from the first request", stall: func(p *TCPProxy, _ *Proxy) { p.Stall(true) }},
		{name: "at the manifest PUT", stall: func(p *TCPProxy, f *Proxy) {
			f.Add(Rule{Method: "PUT", Path: "/manifests/", Before: func() { p.Stall(true) }})
		}},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// client -> HTTP fault proxy (to switch the stall on at the right
			// request) -> TCP proxy (the stall) -> registry. A stall switched
			// on mid-push affects new connections: the HTTP proxy's pooled
			// connection is dropped first so the next request dials anew.
			tcp := StartTCP(t, reg.Host())
			f := Start(t, "http://"+tcp.Host(), nil)
			tc.stall(tcp, f)
			reportPath := filepath.Join(t.TempDir(), "report.toml")
			writeStale(t, reportPath)
			tag := f.Host() + "/stalled/app" + string(rune('a'+i)) + ":v1"
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			start := time.Now()
			_, err := exportpkg.Run(ctx, exportpkg.Options{
				Source: "oci:" + src, Tags: []string{tag}, Insecure: []string{f.Host()},
				Jobs: 4, ReportPath: reportPath, IdleTimeout: idle, Quiet: true, Stderr: io.Discard,
			})
			took := time.Since(start)
			t.Logf("failed after %s: %v", took, err)
			assert.Assert(t, err != nil, "the export succeeded against a stalled registry")
			assert.Check(t, !errors.Is(err, exportpkg.ErrBadInput))
			assert.Check(t, took < stallBound, "gave up after %s, bound %s", took, stallBound)
			assertNoFile(t, reportPath)
		})
	}
}
