package registry

import (
	"net/http"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/remote"
	"gotest.tools/v3/assert"

	"github.com/exportreport/exportreport/pkg/insecureregistry"
)

func TestNewRegistryTransportTLSPolicy(t *testing.T) {
	secure := NewTransport(nil, nil, DefaultIdleTimeout).(*http.Transport)
	assert.Assert(t, secure.TLSClientConfig == nil || !secure.TLSClientConfig.InsecureSkipVerify)

	set, err := insecureregistry.Parse([]string{"insecure.example:5000"})
	assert.NilError(t, err)
	tr := NewTransport(nil, set, DefaultIdleTimeout).(*hostTLSTransport)
	assert.Assert(t, tr.unverified.(*http.Transport).TLSClientConfig.InsecureSkipVerify)
	assert.Assert(t, tr.secure.(*http.Transport).TLSClientConfig == nil || !tr.secure.(*http.Transport).TLSClientConfig.InsecureSkipVerify)
	// The shared default is never modified.
	def := remote.DefaultTransport.(*http.Transport)
	assert.Assert(t, def.TLSClientConfig == nil || !def.TLSClientConfig.InsecureSkipVerify)
}
