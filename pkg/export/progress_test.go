package export

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/exportreport/exportreport/pkg/export/internal/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// throttle slows blob uploads down to about 16 MiB/s.
func throttle(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPatch || (r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/blobs/uploads/")) {
			r.Body = &slowReader{r: r.Body}
		}
		next.ServeHTTP(w, r)
	})
}

type slowReader struct{ r io.ReadCloser }

func (s *slowReader) Read(p []byte) (int, error) {
	if len(p) > 32<<10 {
		p = p[:32<<10]
	}
	time.Sleep(2 * time.Millisecond) // the throttle itself, not a wait
	return s.r.Read(p)
}

func (s *slowReader) Close() error { return s.r.Close() }

func TestRunProgress(t *testing.T) {
	img := seededImage(t, 15, 4<<20, 1)
	line := `^pushing %s: [0-9.]+ (B|KiB|MiB) / [0-9.]+ (B|KiB|MiB) \([0-9.]+ (B|KiB|MiB)/s\)$`

	t.Run("lines on stderr", func(t *testing.T) {
		reg := newTestRegistry(t, throttle)
		stderr := &bytes.Buffer{}
		opts := testOptions(t, img, reg.ref("app:1"))
		opts.Quiet, opts.Stderr, opts.ProgressInterval = false, stderr, 20*time.Millisecond
		_, err := Run(context.Background(), opts)
		assert.NilError(t, err)

		var progress []string
		for _, l := range strings.Split(stderr.String(), "\n") {
			if strings.HasPrefix(l, "pushing ") {
				assert.Check(t, is.Regexp(fmt.Sprintf(line, regexpQuote(reg.ref("app"))), l))
				progress = append(progress, l)
			}
		}
		assert.Assert(t, len(progress) >= 2, "progress lines: %q", stderr.String())
		assert.Assert(t, strings.Contains(stderr.String(), "pushed "+reg.ref("app")+": "), stderr.String())
		assert.Assert(t, strings.Contains(stderr.String(), "level=INFO msg=pushed"), stderr.String())
	})

	// From an OCI layout the blobs are files, which the connection hands
	// to the kernel (sendfile): progress still counts every byte.
	t.Run("from an OCI layout", func(t *testing.T) {
		reg := newTestRegistry(t, throttle)
		dir := t.TempDir()
		lp, err := layout.Write(dir, empty.Index)
		assert.NilError(t, err)
		assert.NilError(t, lp.AppendImage(img))
		stderr := &bytes.Buffer{}
		opts := testOptions(t, nil, reg.ref("app:1"))
		opts.Artifact, opts.Source = nil, "oci:"+dir
		opts.Quiet, opts.Stderr, opts.ProgressInterval = false, stderr, 20*time.Millisecond
		_, err = Run(context.Background(), opts)
		assert.NilError(t, err)
		var total int64
		layers, err := img.Layers()
		assert.NilError(t, err)
		for _, l := range layers {
			n, err := l.Size()
			assert.NilError(t, err)
			total += n
		}
		cfg, err := img.RawConfigFile()
		assert.NilError(t, err)
		total += int64(len(cfg))
		assert.Assert(t, strings.Contains(stderr.String(), "pushed "+reg.ref("app")+": "+formatBytes(total)+" in "), stderr.String())
	})

	t.Run("quiet prints nothing", func(t *testing.T) {
		reg := newTestRegistry(t, throttle)
		stderr := &bytes.Buffer{}
		opts := testOptions(t, img, reg.ref("app:1"))
		opts.Quiet, opts.Stderr, opts.ProgressInterval = true, stderr, 20*time.Millisecond
		_, err := Run(context.Background(), opts)
		assert.NilError(t, err)
		assert.Equal(t, stderr.String(), "")
	})
}

func regexpQuote(s string) string {
	r := strings.NewReplacer(".", `\.`, "/", `/`, ":", `:`)
	return r.Replace(s)
}

func TestFormatBytes(t *testing.T) {
	for n, want := range map[int64]string{
		0:                  "0 B",
		1023:               "1023 B",
		1024:               "1.0 KiB",
		1536:               "1.5 KiB",
		12*1<<20 + 300<<10: "12.3 MiB",
		240 << 20:          "240.0 MiB",
		3 << 30:            "3.0 GiB",
	} {
		assert.Check(t, is.Equal(formatBytes(n), want), n)
	}
}

func TestPrintProgressThrottles(t *testing.T) {
	var out bytes.Buffer
	c := &registry.Counter{}
	c.Total.Add(100)
	stop := printProgress(&out, "reg/app", c, time.Hour)
	for range 100 {
		c.Done.Add(1)
	}
	stop()
	stop()        // twice is harmless
	c.Done.Add(1) // and so is counting after it
	assert.Equal(t, out.String(), "", "a push shorter than the interval prints nothing")
}

// lateReader is a registry transport that answers blob uploads without
// reading their bodies, keeping the bodies to be read after the push has
// returned, as net/http may do (a response that comes before the body is
// sent: the transport's writer goroutine goes on reading it). The blobs
// are in the registry already (seeded), so the manifest PUTs that follow
// succeed. Everything else goes to the registry.
type lateReader struct {
	next   http.RoundTripper
	mu     sync.Mutex
	bodies []io.ReadCloser
	n      int
}

func (l *lateReader) RoundTrip(req *http.Request) (*http.Response, error) {
	p := req.URL.Path
	respond := func(status int, h http.Header) *http.Response {
		if h == nil {
			h = http.Header{}
		}
		return &http.Response{StatusCode: status, Header: h, Body: http.NoBody, Request: req}
	}
	switch {
	case req.Method == http.MethodHead && strings.Contains(p, "/blobs/sha256:"):
		return respond(http.StatusNotFound, nil), nil // upload everything
	case req.Method == http.MethodPost && strings.HasSuffix(p, "/blobs/uploads/"):
		l.mu.Lock()
		l.n++
		loc := fmt.Sprintf("%sfake-%d", p, l.n)
		l.mu.Unlock()
		return respond(http.StatusAccepted, http.Header{"Location": {loc}, "Range": {"0-0"}}), nil
	case strings.Contains(p, "/blobs/uploads/fake-"):
		if req.Body != nil && req.Body != http.NoBody {
			l.mu.Lock()
			l.bodies = append(l.bodies, req.Body)
			l.mu.Unlock()
		}
		if req.Method == http.MethodPatch {
			return respond(http.StatusAccepted, http.Header{"Location": {p}, "Range": {"0-0"}}), nil
		}
		return respond(http.StatusCreated, http.Header{"Docker-Content-Digest": {req.URL.Query().Get("digest")}}), nil
	}
	return l.next.RoundTrip(req)
}

// readLate reads what the push left unread; a panic (a send on a closed
// channel) is returned.
func (l *lateReader) readLate() (panicked any) {
	defer func() { panicked = recover() }()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, b := range l.bodies {
		_, _ = io.Copy(io.Discard, b)
		b.Close()
	}
	return nil
}

// TestProgressAfterPushReturned: a request body read after the push
// returned (net/http may) must not break the export: progress is counted
// with atomic adds that nothing closes, never sent on a channel. Before,
// pushRepo closed the progress channel while a body could still send on
// it: a panic. For an image (export-step's own upload) and an index
// (go-containerregistry's).
func TestProgressAfterPushReturned(t *testing.T) {
	img := seededImage(t, 40, 64<<10, 2)
	idx, err := random.Index(32<<10, 1, 2, random.WithSource(rand.NewSource(41)))
	assert.NilError(t, err)
	for _, tc := range []struct {
		name string
		art  Artifact
	}{
		{"image", img},
		{"index", idx},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := newTestRegistry(t, nil)
			seed := reg.ref("seed:1")
			if i, ok := tc.art.(v1.ImageIndex); ok {
				assert.NilError(t, remote.WriteIndex(mustRef(t, seed), i))
			} else {
				assert.NilError(t, remote.Write(mustRef(t, seed), tc.art.(v1.Image)))
			}
			late := &lateReader{next: http.DefaultTransport}
			opts := testOptions(t, tc.art, reg.ref("app:1"))
			opts.Transport = late
			opts.Quiet, opts.ProgressInterval = false, time.Millisecond
			_, err := Run(context.Background(), opts)
			assert.NilError(t, err)
			assert.Assert(t, len(late.bodies) > 0, "no blob upload was left unread")
			got := late.readLate()
			assert.Check(t, got == nil, "reading a body after the push returned panicked: %v", got)
		})
	}
}
