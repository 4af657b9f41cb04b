package faults

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/rs/zerolog"
)

// Toxiproxy is one TCP proxy of Toxiproxy (github.com/Shopify/toxiproxy/v2),
// run in this process on 127.0.0.1, in front of a registry. Transport
// faults are Toxiproxy's toxics (latency, limit_data, timeout, bandwidth,
// ...), added and removed while connections are open: a toxic applies to
// the connections already open and to every new one.
//
// Only the proxy is used, not Toxiproxy's HTTP API: no port but the
// proxy's own is opened.
type Toxiproxy struct {
	proxy *toxiproxy.Proxy
}

// toxiServer holds the in-process Toxiproxy server (its proxy collection,
// metrics off, logs discarded), made on first use and shared by the tests.
var toxiServer = sync.OnceValue(func() *toxiproxy.ApiServer {
	return toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerolog.Nop())
})

// StartToxiproxy starts a Toxiproxy proxy on a free port of 127.0.0.1 that
// forwards to upstream ("host:port"). It is stopped, its connections
// closed, when the test ends.
func StartToxiproxy(t testing.TB, upstream string) *Toxiproxy {
	t.Helper()
	srv := toxiServer()
	// Proxy names are unique in the collection; the test name is.
	name := strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())
	p := toxiproxy.NewProxy(srv, name, "127.0.0.1:0", upstream)
	if err := srv.Collection.Add(p, true); err != nil {
		t.Fatalf("faults: toxiproxy %s -> %s: %v", name, upstream, err)
	}
	t.Cleanup(func() {
		if err := srv.Collection.Remove(name); err != nil {
			t.Errorf("faults: stop toxiproxy %s: %v", name, err)
		}
	})
	return &Toxiproxy{proxy: p}
}

// Host is "127.0.0.1:PORT", the registry part of references through the proxy.
func (p *Toxiproxy) Host() string { return p.proxy.Listen }

// Toxic is one toxic: Type is Toxiproxy's name for it ("latency",
// "limit_data", "timeout", "bandwidth", "slow_close", "reset_peer", ...),
// Stream "upstream" (client to registry) or "downstream", Attributes its
// settings (e.g. {"latency": 100, "jitter": 50}, in milliseconds).
type Toxic struct {
	Name       string         `json:"name"`
	Type       string         `json:"type"`
	Stream     string         `json:"stream"`
	Toxicity   float32        `json:"toxicity"`
	Attributes map[string]any `json:"attributes"`
}

// AddToxic adds a toxic with toxicity 1 (every connection); it fails the
// test if Toxiproxy refuses it.
func (p *Toxiproxy) AddToxic(t testing.TB, tx Toxic) {
	t.Helper()
	if err := p.addToxic(tx); err != nil {
		t.Fatalf("faults: toxiproxy %s: add toxic %s: %v", p.proxy.Name, tx.Name, err)
	}
}

func (p *Toxiproxy) addToxic(tx Toxic) error {
	tx.Toxicity = 1
	body, err := json.Marshal(tx)
	if err != nil {
		return err
	}
	_, err = p.proxy.Toxics.AddToxicJson(strings.NewReader(string(body)))
	return err
}

// RemoveToxic removes a toxic by name from the proxy and its open connections.
func (p *Toxiproxy) RemoveToxic(name string) error {
	return p.proxy.Toxics.RemoveToxic(context.Background(), name)
}
