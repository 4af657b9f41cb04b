// Package insecure holds the -insecure-registry flag shared by the commands:
// the registry hosts spoken to over plain HTTP or unverified TLS.
package insecure

import (
	"fmt"
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
		if _, err := name.NewRegistry(host, name.StrictValidation); err != nil || strings.Contains(host, "/") {
			return fmt.Errorf("want HOST[:PORT] without scheme or path, got %q", host)
		}
		*h = append(*h, host)
	}
	return nil
}
