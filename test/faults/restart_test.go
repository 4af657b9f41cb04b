package faults

import (
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/exportreport/exportreport/test/distribution"
)

// The registry restarts (stop, start on the same port and storage) in the
// middle of a push: just before the first blob upload is finished (PUT), and just
// before the manifest PUT. A parallel request reaching the proxy while the
// registry is down gets a 502 (connection refused) and is retried; the
// export succeeds with the right digest once the registry is back.
func TestRegistryRestartMidPush(t *testing.T) {
	t.Parallel()
	reg := distribution.Start(t)
	proxy := Start(t, reg.URL(), nil)
	src, want := newLayout(t)

	tests := []struct {
		name         string
		method, path string
	}{
		{name: "before finishing a blob upload", method: http.MethodPut, path: "/blobs/uploads/"},
		{name: "before the manifest PUT", method: http.MethodPut, path: "/manifests/"},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			proxy.Reset()
			var restarted atomic.Int32
			proxy.Add(Rule{Method: tc.method, Path: tc.path, Times: 1, Before: func() {
				reg.Restart()
				restarted.Add(1)
			}})
			reportPath := filepath.Join(t.TempDir(), "report.toml")
			tag := proxy.Host() + "/restart/app" + string(rune('a'+i)) + ":v1"
			res := export(t, src, reportPath, proxy.Host(), nil, tag)
			assert.Equal(t, res.code, 0, res.stderr)
			assert.Check(t, is.Equal(restarted.Load(), int32(1)))
			assert.Check(t, is.Equal(strings.TrimSpace(res.stdout), want.String()))
			assertPushed(t, reg, reportPath, tag, want)
		})
	}
}
