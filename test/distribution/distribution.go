// Package distribution runs the real CNCF Distribution registry (Debian's
// docker-registry) on 127.0.0.1 for tests, optionally with TLS and htpasswd
// basic auth, and holds the policy for tests whose tools are missing: skip
// loudly on a developer machine, fail under CI.
package distribution

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"golang.org/x/crypto/bcrypt"
)

// Binary is the Distribution registry as Debian installs it.
const Binary = "/usr/bin/docker-registry"

const (
	startTimeout = 30 * time.Second
	stopTimeout  = 10 * time.Second
)

// Option configures Start.
type Option func(*options)

type options struct {
	tls            bool
	user, password string
}

// WithTLS serves HTTPS with a server certificate for 127.0.0.1 and localhost,
// signed by a CA made for this registry; Registry.CAFile names the CA.
func WithTLS() Option { return func(o *options) { o.tls = true } }

// WithBasicAuth requires HTTP basic auth with this user and password
// (htpasswd, bcrypt, as Distribution requires).
func WithBasicAuth(user, password string) Option {
	return func(o *options) { o.user, o.password = user, password }
}

// Registry is one running (or stopped) Distribution registry.
type Registry struct {
	t    testing.TB
	dir  string
	host string
	// CAFile is the PEM CA that signed the server certificate (WithTLS
	// only); set SSL_CERT_FILE to it for a Go client.
	CAFile string
	// CertDir holds the CA as ca.crt, the form skopeo's --cert-dir reads
	// (WithTLS only).
	CertDir string
	// User and Password are the basic auth credentials (WithBasicAuth only).
	User, Password string

	mu   sync.Mutex
	proc *process
}

type process struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
	err  error         // Wait's result, valid after done
}

// Start runs a registry on 127.0.0.1 with a free port and storage in a
// temporary directory, and waits until GET /v2/ answers. The registry is
// stopped when the test ends. When the binary is missing the test is skipped
// (CI unset) or fails (CI set).
func Start(t testing.TB, opts ...Option) *Registry {
	t.Helper()
	if _, err := os.Stat(Binary); err != nil {
		Unavailable(t, "the Distribution registry %s is not installed (apt-get install docker-registry, or bash hack/install-deps): %v", Binary, err)
	}
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	r := &Registry{t: t, dir: t.TempDir(), User: o.user, Password: o.password}
	t.Cleanup(r.stop)
	t.Cleanup(func() {
		if t.Failed() {
			r.dumpLog()
		}
	})
	if o.tls {
		ca, err := writeCertificates(r.dir)
		if err != nil {
			t.Fatalf("registry TLS certificates: %v", err)
		}
		r.CAFile, r.CertDir = ca.file, ca.dir
	}
	if o.user != "" {
		if err := writeHtpasswd(filepath.Join(r.dir, "htpasswd"), o.user, o.password); err != nil {
			t.Fatalf("registry htpasswd: %v", err)
		}
	}
	// Another process may take the port between choosing and binding it;
	// choose again a few times before giving up.
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := freePort()
		if err != nil {
			t.Fatalf("registry: find a free port: %v", err)
		}
		r.host = "127.0.0.1:" + strconv.Itoa(port)
		if err := r.writeConfig(o); err != nil {
			t.Fatalf("registry config: %v", err)
		}
		if lastErr = r.start(); lastErr == nil {
			return r
		}
	}
	t.Fatalf("registry: %v", lastErr)
	return nil
}

// Host is "127.0.0.1:PORT", the registry part of image references.
func (r *Registry) Host() string { return r.host }

// Scheme is "https" with WithTLS, else "http".
func (r *Registry) Scheme() string {
	if r.CAFile != "" {
		return "https"
	}
	return "http"
}

// URL is the base URL, e.g. "http://127.0.0.1:PORT".
func (r *Registry) URL() string { return r.Scheme() + "://" + r.host }

// Dir is the directory holding the registry's config, storage and log.
func (r *Registry) Dir() string { return r.dir }

// Stop stops the registry and waits until it has exited; the port and
// storage are kept for Restart.
func (r *Registry) Stop() {
	r.t.Helper()
	r.stop()
}

// Restart starts a stopped registry again on the same port with the same
// storage.
func (r *Registry) Restart() {
	r.t.Helper()
	r.stop()
	if err := r.start(); err != nil {
		r.t.Fatalf("registry restart: %v", err)
	}
}

// Auth is the base64 "user:password" string a Docker config's auths entry
// holds; empty without basic auth.
func (r *Registry) Auth() string {
	if r.User == "" {
		return ""
	}
	return base64.StdEncoding.EncodeToString([]byte(r.User + ":" + r.Password))
}

// DockerConfig writes a Docker config directory (config.json with an auths
// entry for this registry's host) and returns it, for DOCKER_CONFIG.
func (r *Registry) DockerConfig(t testing.TB) string {
	t.Helper()
	return WriteDockerConfig(t, r.host, r.Auth())
}

// WriteDockerConfig writes a Docker config directory whose config.json has
// one auths entry, auth (base64 "user:password") for host, and returns it,
// for DOCKER_CONFIG.
func WriteDockerConfig(t testing.TB, host, auth string) string {
	t.Helper()
	dir := t.TempDir()
	cfg := map[string]any{"auths": map[string]any{host: map[string]string{"auth": auth}}}
	data, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), data, 0o600); err != nil {
		t.Fatalf("write docker config: %v", err)
	}
	return dir
}

// Transport is an HTTP transport that trusts the registry's CA (if any).
func (r *Registry) Transport() *http.Transport {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if r.CAFile != "" {
		pool, err := caPool(r.CAFile)
		if err != nil {
			r.t.Fatalf("registry CA: %v", err)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return tr
}

// Authenticator is basic auth with the registry's credentials, or anonymous.
func (r *Registry) Authenticator() authn.Authenticator {
	if r.User == "" {
		return authn.Anonymous
	}
	return &authn.Basic{Username: r.User, Password: r.Password}
}

// RemoteOptions are the go-containerregistry remote options to talk to this
// registry: its transport and credentials.
func (r *Registry) RemoteOptions() []remote.Option {
	return []remote.Option{remote.WithTransport(r.Transport()), remote.WithAuth(r.Authenticator())}
}

// Catalog lists the repositories the registry holds (GET /v2/_catalog).
func (r *Registry) Catalog(t testing.TB) []string {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, r.URL()+"/v2/_catalog", nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.User != "" {
		req.SetBasicAuth(r.User, r.Password)
	}
	resp, err := (&http.Client{Transport: r.Transport(), Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("registry catalog: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("registry catalog: %s", resp.Status)
	}
	var body struct {
		Repositories []string `json:"repositories"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("registry catalog: %v", err)
	}
	return body.Repositories
}

func (r *Registry) configPath() string { return filepath.Join(r.dir, "config.yml") }
func (r *Registry) logPath() string    { return filepath.Join(r.dir, "registry.log") }

func (r *Registry) writeConfig(o options) error {
	var b strings.Builder
	fmt.Fprintf(&b, `version: 0.1
log:
  level: info
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %q
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: %q
  secret: exportreport-test-secret
`, filepath.Join(r.dir, "storage"), r.host)
	if o.tls {
		fmt.Fprintf(&b, "  tls:\n    certificate: %q\n    key: %q\n",
			filepath.Join(r.dir, "server.pem"), filepath.Join(r.dir, "server-key.pem"))
	}
	if o.user != "" {
		fmt.Fprintf(&b, "auth:\n  htpasswd:\n    realm: exportreport-test\n    path: %q\n",
			filepath.Join(r.dir, "htpasswd"))
	}
	return os.WriteFile(r.configPath(), []byte(b.String()), 0o600)
}

// start runs the registry process and waits for it to answer.
func (r *Registry) start() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	logFile, err := os.OpenFile(r.logPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logFile.Close()
	cmd := exec.Command(Binary, "serve", r.configPath())
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Its own process group, so a signal to the test's group does not race us.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", Binary, err)
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	r.proc = p
	if err := r.waitReady(p); err != nil {
		r.kill(p)
		r.proc = nil
		return fmt.Errorf("registry on %s (log %s): %w: %s", r.host, r.logPath(), err,
			strings.ReplaceAll(lastLines(r.logPath(), 5), "\n", " | "))
	}
	return nil
}

// waitReady polls GET /v2/ until the registry answers 200 (or 401 with
// auth), the process exits, or the deadline passes.
func (r *Registry) waitReady(p *process) error {
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	client := &http.Client{Transport: r.Transport(), Timeout: 2 * time.Second}
	defer client.CloseIdleConnections()
	backoff := 5 * time.Millisecond
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.URL()+"/v2/", nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK || (r.User != "" && resp.StatusCode == http.StatusUnauthorized) {
				return nil
			}
			err = fmt.Errorf("GET /v2/: %s", resp.Status)
		}
		select {
		case <-p.done:
			return fmt.Errorf("exited before it was ready: %v", p.err)
		case <-ctx.Done():
			return fmt.Errorf("not ready after %s: %v", startTimeout, err)
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 200*time.Millisecond)
	}
}

func (r *Registry) stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.proc == nil {
		return
	}
	r.kill(r.proc)
	r.proc = nil
}

// kill sends SIGTERM, then SIGKILL if the registry has not exited in time,
// and waits for it.
func (r *Registry) kill(p *process) {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return
	case <-time.After(stopTimeout):
	}
	_ = p.cmd.Process.Kill()
	<-p.done
}

func (r *Registry) dumpLog() {
	if tail := lastLines(r.logPath(), 30); tail != "" {
		r.t.Logf("registry %s log %s (last 30 lines):\n%s", r.host, r.logPath(), tail)
	}
}

func lastLines(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func writeHtpasswd(path, user, password string) error {
	if strings.Contains(user, ":") {
		return errors.New("htpasswd user must not contain ':'")
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		return err
	}
	return os.WriteFile(path, []byte(user+":"+string(hash)+"\n"), 0o600)
}
