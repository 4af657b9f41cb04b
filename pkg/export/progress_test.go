package export

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
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
		opts.Quiet, opts.Stderr, opts.progressInterval = false, stderr, 20*time.Millisecond
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
		opts.Quiet, opts.Stderr, opts.progressInterval = false, stderr, 20*time.Millisecond
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
		opts.Quiet, opts.Stderr, opts.progressInterval = true, stderr, 20*time.Millisecond
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
	updates := make(chan v1.Update)
	done := printProgress(&out, "reg/app", updates, time.Hour)
	for i := int64(1); i <= 100; i++ {
		updates <- v1.Update{Complete: i, Total: 100}
	}
	close(updates)
	<-done
	assert.Equal(t, out.String(), "", "a push shorter than the interval prints nothing")
}
