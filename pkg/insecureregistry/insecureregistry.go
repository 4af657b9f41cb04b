// Package insecureregistry holds the -insecure-registry flag shared by the commands:
// the registry hosts spoken to over plain HTTP or unverified TLS, the one
// rule deciding whether a registry is one of them (Match), and the one way
// TLS verification is switched off for them (Unverified), which
// export-step and report2results both apply.
package insecureregistry

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// Hosts is a repeatable flag.Value of registry hosts ("host" or
// "host:port"). One value may hold a comma-separated list, and an empty value
// adds nothing, so a Tekton param defaulting to "" can always be passed as
// -insecure-registry=$(params.INSECURE_REGISTRIES).
type Hosts []string

// String implements flag.Value.
func (h *Hosts) String() string { return strings.Join(*h, ",") }

// Set implements flag.Value.
func (h *Hosts) Set(s string) error {
	for _, host := range strings.Split(s, ",") {
		host = strings.TrimSpace(host)
		if host == "" {
			continue
		}
		if err := check(host); err != nil {
			return err
		}
		*h = append(*h, host)
	}
	return nil
}

// Parse checks a list of hosts given one per entry (library callers:
// export.Options.Insecure); an empty entry is an error here.
func Parse(hosts []string) (Hosts, error) {
	out := make(Hosts, 0, len(hosts))
	for _, host := range hosts {
		if err := check(host); err != nil {
			return nil, fmt.Errorf("-insecure-registry: %w", err)
		}
		out = append(out, host)
	}
	return out, nil
}

func check(host string) error {
	if _, err := name.NewRegistry(host, name.StrictValidation); err != nil || host == "" || strings.Contains(host, "/") {
		return fmt.Errorf("want HOST[:PORT] without scheme or path, got %q", host)
	}
	return nil
}

// Match reports whether host ("host" or "host:port", as in a URL or a
// registry name) is insecure. The rule, the same in every command: host
// names compare without regard to case; an entry with a port matches that
// port only; an entry without a port matches the host on every port
// ("registry.local" covers "registry.local:5000", "registry.local:5000"
// does not cover "registry.local" or "registry.local:5001").
func (h Hosts) Match(host string) bool {
	bare := withoutPort(host)
	for _, e := range h {
		if strings.EqualFold(e, host) || (withoutPort(e) == e && strings.EqualFold(e, bare)) {
			return true
		}
	}
	return false
}

// withoutPort drops a ":port" suffix; "[::1]:5000" gives "[::1]" and
// "[::1]" stays as it is.
func withoutPort(host string) string {
	if i := strings.LastIndexByte(host, ':'); i > 0 && !strings.HasSuffix(host, "]") {
		return host[:i]
	}
	return host
}

// Unverified returns a clone of t that does not verify TLS certificates,
// for requests to the hosts of -insecure-registry only: the caller picks it
// for those hosts (Match), never as a default. t is not modified.
func Unverified(t *http.Transport) *http.Transport {
	u := t.Clone()
	if u.TLSClientConfig == nil {
		u.TLSClientConfig = &tls.Config{}
	}
	u.TLSClientConfig.InsecureSkipVerify = true //nolint:gosec // only for hosts given with -insecure-registry
	return u
}
