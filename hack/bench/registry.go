package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

const registryBinary = "/usr/bin/docker-registry"

// registry is one fresh CNCF Distribution registry on 127.0.0.1, plain HTTP,
// with its storage in its own directory. Its access log (one line per
// request, written before the response is sent) counts the requests of a
// push.
type registry struct {
	host string
	dir  string
	cmd  *exec.Cmd
	done chan struct{}
}

func startRegistry(ctx context.Context, parent string) (*registry, error) {
	dir, err := os.MkdirTemp(parent, "registry-")
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	host := l.Addr().String()
	l.Close()
	config := fmt.Sprintf(`version: 0.1
log:
  level: error
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: %s
http:
  addr: %s
  secret: exportreport-bench
`, filepath.Join(dir, "storage"), host)
	cfg := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfg, []byte(config), 0o644); err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(dir, "registry.log"))
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(registryBinary, "serve", cfg)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", registryBinary, err)
	}
	r := &registry{host: host, dir: dir, cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); close(r.done) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + host + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return r, nil
			}
		}
		select {
		case <-r.done:
			return nil, fmt.Errorf("registry on %s exited; see %s", host, filepath.Join(dir, "registry.log"))
		case <-ctx.Done():
			r.stop()
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			r.stop()
			return nil, fmt.Errorf("registry on %s did not answer within 30s", host)
		}
	}
}

// stop kills the registry and removes its storage.
func (r *registry) stop() {
	r.cmd.Process.Kill()
	<-r.done
	os.RemoveAll(r.dir)
}

func (r *registry) logPath() string { return filepath.Join(r.dir, "registry.log") }

// logSize is where the access log ends now.
func (r *registry) logSize() int64 {
	fi, err := os.Stat(r.logPath())
	if err != nil {
		return 0
	}
	return fi.Size()
}

// requestCount counts a push's requests by kind, and by the blob digest
// they name (in the path or the query: a HEAD, a mount-offering POST, the
// PUT that ends an upload).
type requestCount struct {
	Kinds   map[string]int
	PerBlob map[string]int
}

func (c requestCount) total() int {
	n := 0
	for _, v := range c.Kinds {
		n += v
	}
	return n
}

// String lists the kinds in a fixed order, e.g. "blob POST 3, blob PUT 3,
// manifest PUT 1".
func (c requestCount) String() string {
	var parts []string
	for _, k := range requestKinds {
		if c.Kinds[k] > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", k, c.Kinds[k]))
		}
	}
	return strings.Join(parts, ", ")
}

var blobDigest = regexp.MustCompile(`sha256(?::|%3A)[0-9a-f]{64}`)

var requestKinds = []string{"ping", "blob HEAD", "blob GET", "blob POST", "blob PATCH", "blob PUT",
	"manifest HEAD", "manifest GET", "manifest PUT", "other"}

var accessLine = regexp.MustCompile(`"(GET|HEAD|POST|PUT|PATCH|DELETE) (\S+) HTTP/[0-9.]+"`)

// countRequests reads the access log from offset.
func (r *registry) countRequests(offset int64) (requestCount, error) {
	f, err := os.Open(r.logPath())
	if err != nil {
		return requestCount{}, err
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return requestCount{}, err
	}
	c := requestCount{Kinds: map[string]int{}, PerBlob: map[string]int{}}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		m := accessLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		kind := requestKind(m[1], m[2])
		c.Kinds[kind]++
		if strings.HasPrefix(kind, "blob") {
			for _, d := range blobDigest.FindAllString(m[2], -1) {
				c.PerBlob[strings.Replace(d, "%3A", ":", 1)]++
			}
		}
	}
	return c, sc.Err()
}

func requestKind(method, path string) string {
	path, _, _ = strings.Cut(path, "?")
	switch {
	case path == "/v2/" || path == "/v2":
		return "ping"
	case strings.Contains(path, "/blobs/uploads/") && method == http.MethodPost:
		return "blob POST"
	case strings.Contains(path, "/blobs/uploads/") && method == http.MethodPatch:
		return "blob PATCH"
	case strings.Contains(path, "/blobs/uploads/") && method == http.MethodPut:
		return "blob PUT"
	case strings.Contains(path, "/blobs/") && (method == http.MethodHead || method == http.MethodGet):
		return "blob " + method
	case strings.Contains(path, "/manifests/") && (method == http.MethodHead || method == http.MethodGet || method == http.MethodPut):
		return "manifest " + method
	}
	return "other"
}
