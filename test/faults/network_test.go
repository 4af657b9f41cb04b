package faults

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/exportreport/exportreport/pkg/badinput"
	exportpkg "github.com/exportreport/exportreport/pkg/export"
	"github.com/exportreport/exportreport/test/distribution"
)

// newBigLayout is newLayout with one 2 MiB layer (random, so gzip cannot
// shrink it): big enough to cut a connection in the middle of its upload.
func newBigLayout(t *testing.T) (string, v1.Hash) {
	t.Helper()
	dir, d, _ := randomLayout(t, 2<<20, 1)
	return dir, d
}

// assertServedRaw checks that the registry, asked directly, serves for tag
// a manifest whose raw bytes hash to want: the digest in the report is the
// sha256 of what the registry really holds, not only what it says in a header.
func assertServedRaw(t *testing.T, reg *distribution.Registry, tag string, want v1.Hash) {
	t.Helper()
	ref, err := name.ParseReference(tag)
	assert.NilError(t, err)
	direct, err := name.ParseReference(reg.Host() + "/" + ref.Context().RepositoryStr() + ":" + ref.Identifier())
	assert.NilError(t, err)
	desc, err := remote.Get(direct, reg.RemoteOptions()...)
	assert.NilError(t, err)
	got, _, err := v1.SHA256(bytes.NewReader(desc.Manifest))
	assert.NilError(t, err)
	assert.Check(t, is.Equal(got, want), "sha256 of the manifest the registry serves")
}

// cutCounter is the transport of an HTTP proxy behind Toxiproxy: it counts
// the requests with a body (blob uploads) that failed because Toxiproxy
// cut the client's connection in the middle, and calls onCut with the
// count, before the client can retry (the failure reaches this transport
// within milliseconds; export-step's first retry waits 0.45 s or more).
type cutCounter struct {
	next  http.RoundTripper
	onCut func(n int)

	mu   sync.Mutex
	cuts int
}

func (c *cutCounter) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := c.next.RoundTrip(req)
	if err != nil && req.Body != nil && req.Body != http.NoBody {
		c.mu.Lock()
		c.cuts++
		n := c.cuts
		c.mu.Unlock()
		c.onCut(n)
	}
	return resp, err
}

func (c *cutCounter) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cuts
}

// Transport faults from Toxiproxy between export-step and the registry:
// the connection cut in the middle of a blob upload, twice, and latency
// spikes both ways: the export succeeds, the report's digest is what the
// registry serves.
func TestNetworkFaultsSurvived(t *testing.T) {
	t.Parallel()
	reg := distribution.Start(t)
	src, want := newBigLayout(t)

	// Latency spikes: every chunk both ways is held 100 ms ± 50 ms, so one
	// request and its answer take at least 100 ms; an export is at least
	// minRoundTrips of them in sequence (ping, blob check, upload start,
	// upload, manifest PUT, verify).
	const latency, jitter = 100, 50
	const minRoundTrips = 5
	minTook := minRoundTrips * 2 * (latency - jitter) * time.Millisecond

	tests := []struct {
		name string
		// setup starts the proxies and returns the host export-step pushes
		// to, and, after the export, checks what the faults did.
		setup   func(t *testing.T) (host string, check func(t *testing.T, took time.Duration))
		minTook time.Duration
	}{
		{name: "connection cut after 512 KiB of a 2 MiB blob upload, twice", setup: func(t *testing.T) (string, func(*testing.T, time.Duration)) {
			// export-step -> Toxiproxy (limit_data: a connection is closed
			// once 512 KiB went through it upstream) -> HTTP proxy (counts
			// the uploads that broke; removes the toxic after the second)
			// -> registry.
			var tox atomic.Pointer[Toxiproxy] // started after the HTTP proxy it forwards to
			cuts := &cutCounter{next: newTransport(t), onCut: func(n int) {
				if n == 2 {
					if err := tox.Load().RemoveToxic("cut"); err != nil {
						t.Errorf("remove toxic: %v", err)
					}
				}
			}}
			hp := Start(t, reg.URL(), cuts)
			tox.Store(StartToxiproxy(t, hp.Host()))
			tox.Load().AddToxic(t, Toxic{Name: "cut", Type: "limit_data", Stream: "upstream", Attributes: map[string]any{"bytes": 512 << 10}})
			return tox.Load().Host(), func(t *testing.T, _ time.Duration) {
				assert.Check(t, is.Equal(cuts.count(), 2), "uploads cut")
			}
		}},
		{name: "latency spikes both ways", setup: func(t *testing.T) (string, func(*testing.T, time.Duration)) {
			tox := StartToxiproxy(t, reg.Host())
			for _, stream := range []string{"upstream", "downstream"} {
				tox.AddToxic(t, Toxic{Name: "latency_" + stream, Type: "latency", Stream: stream,
					Attributes: map[string]any{"latency": latency, "jitter": jitter}})
			}
			return tox.Host(), func(t *testing.T, took time.Duration) {
				assert.Check(t, took >= minTook, "took %s, less than %d round trips with the latency (%s): was it applied?", took, minRoundTrips, minTook)
			}
		}},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			host, check := tc.setup(t)
			reportPath := filepath.Join(t.TempDir(), "report.toml")
			writeStale(t, reportPath)
			tag := host + "/network/app" + string(rune('a'+i)) + ":v1"
			res := export(t, src, reportPath, host, nil, tag)
			assert.Equal(t, res.code, 0, res.stderr)
			assert.Check(t, is.Equal(strings.TrimSpace(res.stdout), want.String()))
			check(t, res.took)
			assertPushed(t, reg, reportPath, tag, want)
			assertServedRaw(t, reg, tag, want)
		})
	}
}

// newTransport is a transport of the test's own (not the shared
// http.DefaultTransport), its idle connections closed when the test ends.
func newTransport(t testing.TB) *http.Transport {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(tr.CloseIdleConnections)
	return tr
}

// A slow or stalled registry, with a short idle timeout
// (export.Options.IdleTimeout; the default is 2 min). One that accepts
// connections and then says nothing (Toxiproxy's timeout toxic with no
// timeout: data dropped, connection held open) fails within stallBound,
// with no report (a stale one removed). One that is slow but keeps bytes
// moving (bandwidth toxic up) succeeds with the right digest when the idle
// timeout is longer than the time its socket buffers take to drain, and
// fails (bounded, no report) when it is shorter: the idle timeout counts
// from the last byte export-step wrote into its socket, and the kernel
// takes the whole 2 MiB layer at once, so export-step then waits for the
// answer as long as the link takes to carry what the buffers hold
// (docs/reliability.md). Each case has one outcome.
func TestSlowOrStalledRegistry(t *testing.T) {
	t.Parallel()
	reg := distribution.Start(t)
	small, _ := newLayout(t)
	big, bigDigest := newBigLayout(t)

	const stallBound = 30 * time.Second
	stall := Toxic{Name: "stall", Type: "timeout", Stream: "upstream", Attributes: map[string]any{"timeout": 0}}
	// 1 MiB/s: the 2 MiB layer takes 2 s to go through, in 100 ms slices.
	slow := Toxic{Name: "slow", Type: "bandwidth", Stream: "upstream", Attributes: map[string]any{"rate": 1024}}
	const minSlow = 2 * time.Second
	// 512 KiB/s: 4 s for the layer; with a 1 s idle timeout the silence
	// after export-step's last write exceeds it as soon as the socket
	// buffers hold 512 KiB of it (they take all 2 MiB on loopback).
	slower := Toxic{Name: "slower", Type: "bandwidth", Stream: "upstream", Attributes: map[string]any{"rate": 512}}

	var slowCounted *Proxy // the HTTP proxy of the slow case with a 1 s idle timeout

	type outcome int
	const (
		fails outcome = iota
		succeeds
	)
	tests := []struct {
		name string
		src  string
		want v1.Hash
		idle time.Duration
		// timeout is export.Options.Timeout (0: the default, 10 min).
		timeout time.Duration
		// check, when set, checks more after the outcome.
		check func(t *testing.T)
		// setup starts the proxies and returns the host to push to.
		setup func(t *testing.T) string
		outcome
	}{
		{name: "stalled from the first request", src: small, idle: time.Second, outcome: fails, setup: func(t *testing.T) string {
			tox := StartToxiproxy(t, reg.Host())
			tox.AddToxic(t, stall)
			return tox.Host()
		}},
		{name: "stalled from the manifest PUT on", src: small, idle: time.Second, outcome: fails, setup: func(t *testing.T) string {
			// export-step -> HTTP proxy (adds the toxic when the manifest
			// PUT arrives) -> Toxiproxy -> registry. The toxic applies to
			// the connections already open too.
			tox := StartToxiproxy(t, reg.Host())
			f := Start(t, "http://"+tox.Host(), newTransport(t))
			f.Add(Rule{Method: http.MethodPut, Path: "/manifests/", Times: 1, Before: func() {
				if err := tox.addToxic(stall); err != nil {
					t.Errorf("add toxic: %v", err)
				}
			}})
			return f.Host()
		}},
		// The time budget bounds a stalled connection too: with the
		// default idle timeout (2 min) the export ends at -timeout.
		{name: "stalled from the first request, default idle timeout, -timeout 3s", src: small, timeout: 3 * time.Second, outcome: fails, setup: func(t *testing.T) string {
			tox := StartToxiproxy(t, reg.Host())
			tox.AddToxic(t, stall)
			return tox.Host()
		}},
		{name: "slow (1 MiB/s up), idle timeout 5s", src: big, want: bigDigest, idle: 5 * time.Second, outcome: succeeds, setup: func(t *testing.T) string {
			tox := StartToxiproxy(t, reg.Host())
			tox.AddToxic(t, slow)
			return tox.Host()
		}},
		// The idle timeout shorter than the buffers take to drain: the first
		// try of the layer's upload times out (export-step's last write was
		// at once, the answer comes ~4 s later), but Toxiproxy still
		// delivers what it holds, so the registry completes that upload and
		// the retry's POST finds the blob there (mount, 201). Measured: the
		// same in every run; docs/reliability.md.
		{name: "slower (512 KiB/s up), idle timeout 1s: a try times out, the retry finds the blob", src: big, want: bigDigest, idle: time.Second, outcome: succeeds,
			setup: func(t *testing.T) string {
				// export-step -> Toxiproxy (slow) -> HTTP proxy (counts) -> registry
				counter := Start(t, reg.URL(), newTransport(t))
				slowCounted = counter
				tox := StartToxiproxy(t, counter.Host())
				tox.AddToxic(t, slower)
				return tox.Host()
			},
			check: func(t *testing.T) {
				// Two blobs (the layer, the config): a third POST is a retry.
				posts := count(slowCounted.Requests(), http.MethodPost, "/blobs/uploads/")
				assert.Check(t, posts >= 3, "%d blob upload POSTs: no try timed out", posts)
			},
		},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			host := tc.setup(t)
			reportPath := filepath.Join(t.TempDir(), "report.toml")
			writeStale(t, reportPath)
			tag := host + "/slow/app" + string(rune('a'+i)) + ":v1"
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			start := time.Now()
			rep, err := exportpkg.Run(ctx, exportpkg.Options{
				Source: "oci:" + tc.src, Tags: []string{tag}, Insecure: []string{host},
				Jobs: 4, ReportPath: reportPath, IdleTimeout: tc.idle, Timeout: tc.timeout, Quiet: true, Stderr: io.Discard,
			})
			took := time.Since(start)
			t.Logf("took %s: %v", took, err)
			if tc.outcome == succeeds {
				assert.NilError(t, err)
				assert.Check(t, is.Equal(rep.Image.Digest, tc.want.String()))
				assert.Check(t, took >= minSlow, "took %s, less than the bandwidth allows (%s): was it applied?", took, minSlow)
				assertPushed(t, reg, reportPath, tag, tc.want)
				assertServedRaw(t, reg, tag, tc.want)
				if tc.check != nil {
					tc.check(t)
				}
				return
			}
			assert.Assert(t, err != nil, "the export succeeded against a stalled registry")
			assert.Check(t, !errors.Is(err, badinput.Err))
			assert.Check(t, is.ErrorContains(err, host))
			assert.Check(t, took < stallBound, "gave up after %s, bound %s", took, stallBound)
			if tc.timeout > 0 {
				assert.Check(t, is.ErrorContains(err, "-timeout "+tc.timeout.String()+": the export did not finish within its time budget"))
				assert.Check(t, took >= tc.timeout && took < tc.timeout+5*time.Second, "gave up after %s, -timeout %s", took, tc.timeout)
			}
			assertNoFile(t, reportPath)
		})
	}
}
