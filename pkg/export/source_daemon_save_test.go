package export

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/client"
	"gotest.tools/v3/assert"

	"github.com/exportreport/exportreport/pkg/badinput"
	"github.com/exportreport/exportreport/test/distribution"
)

// dockerAPIProxy is a TCP proxy to the Docker engine's socket that counts
// the API calls it forwards, by method and path without the version.
type dockerAPIProxy struct {
	mu    sync.Mutex
	calls map[string]int
	host  string
}

func newDockerAPIProxy(t *testing.T) *dockerAPIProxy {
	t.Helper()
	distribution.RequireDockerEngine(t)
	sock := "/var/run/docker.sock"
	if h := os.Getenv("DOCKER_HOST"); h != "" {
		if !strings.HasPrefix(h, "unix://") {
			t.Skipf("DOCKER_HOST %s is not a unix socket; the API proxy only forwards to one", h)
		}
		sock = strings.TrimPrefix(h, "unix://")
	}
	p := &dockerAPIProxy{calls: map[string]int{}}
	rp := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: "docker"})
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}
	t.Cleanup(tr.CloseIdleConnections) // after srv.Close, registered below
	rp.Transport = tr
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path := r.URL.Path
		if strings.HasPrefix(path, "/v1.") {
			path = path[strings.Index(path[1:], "/")+1:]
		}
		p.mu.Lock()
		p.calls[r.Method+" "+path]++
		p.mu.Unlock()
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	p.host = "tcp://" + strings.TrimPrefix(srv.URL, "http://")
	return p
}

func (p *dockerAPIProxy) count(call string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls[call]
}

// TestOpenDaemonSavedOnce: a docker-daemon: source is read with one image
// save, whatever the number of layers, and gives the image the
// docker-archive it was loaded from gives (same layers, same config, same
// compression: same digest); the push sends nothing that is not a layer
// of it.
func TestOpenDaemonSavedOnce(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	proxy := newDockerAPIProxy(t)
	tag := uniqueDaemonTag(t)
	arch := writeRawArchive(t, t.TempDir(), tag, 21, 2<<20, 1<<20, 4096)
	dockerCLI(t, "load", "-i", arch.path)

	c, err := client.New(client.WithHost(proxy.host))
	assert.NilError(t, err)
	t.Cleanup(func() { c.Close() })
	for _, comp := range []Compression{CompressionGzip, CompressionZstd} {
		t.Run(string(comp), func(t *testing.T) {
			fromArchive, err := Open(ctx, Source{Transport: TransportDockerArchive, Path: arch.path}, WithCompression(comp), WithScratchDir(t.TempDir()))
			assert.NilError(t, err)
			before := proxy.count("GET /images/get")
			img, err := Open(ctx, Source{Transport: TransportDaemon, Ref: tag},
				WithDockerClient(c), WithScratchDir(t.TempDir()), WithCompression(comp))
			assert.NilError(t, err)
			assert.Equal(t, digestOf(t, img), digestOf(t, fromArchive))
			reg := newTestRegistry(t, nil)
			opts := testOptions(t, img, reg.ref("app:1"))
			rep, err := Run(ctx, opts)
			assert.NilError(t, err)
			assert.Equal(t, rep.Image.Digest, digestOf(t, fromArchive))
			assert.Equal(t, proxy.count("GET /images/get")-before, 1, "image saves: %v", proxy.calls)
		})
	}

	t.Run("missing image", func(t *testing.T) {
		_, err := Open(ctx, Source{Transport: TransportDaemon, Ref: "exportreport-test/no-such-image:never"},
			WithDockerClient(c), WithScratchDir(t.TempDir()))
		assert.ErrorIs(t, err, badinput.Err)
		assert.ErrorContains(t, err, "the Docker daemon has no image")
	})
}
