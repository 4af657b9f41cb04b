package export

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/exportreport/exportreport/pkg/badinput"
)

// manyLayers is an OCI image of n small, distinct layers.
func manyLayers(t *testing.T, n int) v1.Image {
	t.Helper()
	layers := make([]v1.Layer, n)
	for i := range layers {
		layers[i] = static.NewLayer([]byte(fmt.Sprintf("layer %d\n", i)), types.OCILayer)
	}
	img, err := mutate.AppendLayers(mutate.MediaType(mutate.ConfigMediaType(empty.Image, types.OCIConfigJSON), types.OCIManifestSchema1), layers...)
	assert.NilError(t, err)
	return img
}

// heapPeak samples the heap in use until stop is called, and returns the
// largest value seen (and the number of samples).
func heapPeak() (stop func() (peak uint64, samples int)) {
	var (
		mu      sync.Mutex
		peak    uint64
		samples int
		done    = make(chan struct{})
		exited  = make(chan struct{})
	)
	sample := func() {
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		mu.Lock()
		peak = max(peak, m.HeapInuse)
		samples++
		mu.Unlock()
	}
	go func() {
		defer close(exited)
		tick := time.NewTicker(25 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				sample()
			}
		}
	}()
	return func() (uint64, int) {
		close(done)
		<-exited
		sample()
		mu.Lock()
		defer mu.Unlock()
		return peak, samples
	}
}

// manyLayersLayout writes an OCI layout holding one image of n small,
// distinct layers, blob by blob (go-containerregistry's mutate and layout
// writers take quadratic time on that many layers), and returns the
// image's manifest.
func manyLayersLayout(t *testing.T, dir string, n int) []byte {
	t.Helper()
	lp, err := layout.Write(dir, empty.Index)
	assert.NilError(t, err)
	m := v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1}
	cfg := v1.ConfigFile{Architecture: "amd64", OS: "linux", RootFS: v1.RootFS{Type: "layers"}}
	for i := range n {
		l := static.NewLayer([]byte(fmt.Sprintf("layer %d\n", i)), types.OCILayer)
		d, err := partial.Descriptor(l)
		assert.NilError(t, err)
		m.Layers = append(m.Layers, *d)
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, d.Digest)
		rc, err := l.Compressed()
		assert.NilError(t, err)
		assert.NilError(t, lp.WriteBlob(d.Digest, rc))
	}
	rawCfg, err := json.Marshal(cfg)
	assert.NilError(t, err)
	m.Config = writeBlob(t, lp, rawCfg, types.OCIConfigJSON)
	raw, err := json.Marshal(m)
	assert.NilError(t, err)
	assert.NilError(t, lp.AppendDescriptor(writeBlob(t, lp, raw, types.OCIManifestSchema1)))
	return raw
}

func writeBlob(t *testing.T, lp layout.Path, b []byte, mt types.MediaType) v1.Descriptor {
	t.Helper()
	h, n, err := v1.SHA256(bytes.NewReader(b))
	assert.NilError(t, err)
	assert.NilError(t, lp.WriteBlob(h, io.NopCloser(bytes.NewReader(b))))
	return v1.Descriptor{MediaType: mt, Size: n, Digest: h}
}

// TestTenThousandLayers exports an image of 10,000 small layers from an OCI
// layout to the in-process registry and to an -oci-layout: it succeeds with
// the right digest, every layer is in the registry and the layout, and the
// heap in use stays bounded (the manifest is about 1.6 MB; the bound is
// generous, for the race detector). Before the layout source parsed its
// manifest once, 1,000 layers took 16 s and 10,000 did not finish in 10 min.
func TestTenThousandLayers(t *testing.T) {
	if testing.Short() {
		t.Skip("exports 10,000 layers")
	}
	const n = 10000
	src := filepath.Join(t.TempDir(), "src")
	raw := manyLayersLayout(t, src, n)
	t.Logf("manifest: %d layers, %d bytes", n, len(raw))
	assert.Assert(t, len(raw) < MaxManifestBytes)
	want, _, err := v1.SHA256(bytes.NewReader(raw))
	assert.NilError(t, err)

	reg := newTestRegistry(t, nil)
	tag := reg.ref("big/app:1")
	opts := testOptions(t, nil, tag)
	opts.Artifact = nil
	opts.Source = "oci:" + src
	opts.OCILayout = filepath.Join(t.TempDir(), "out")

	runtime.GC()
	start := time.Now()
	stop := heapPeak()
	rep, err := Run(context.Background(), opts)
	peak, samples := stop()
	elapsed := time.Since(start)
	assert.NilError(t, err)
	t.Logf("exported %d layers in %s; peak heap in use %d MiB (%d samples); %d registry requests", n, elapsed.Round(time.Millisecond), peak>>20, samples, len(reg.requests()))

	assert.Equal(t, rep.Image.Digest, want.String())
	assert.Equal(t, rep.Image.ManifestSize, int64(len(raw)))
	pushed, err := remote.Image(mustRef(t, tag))
	assert.NilError(t, err)
	m, err := pushed.Manifest()
	assert.NilError(t, err)
	assert.Equal(t, len(m.Layers), n)
	for _, i := range []int{0, n / 2, n - 1} { // a layer's content, read back
		l, err := pushed.LayerByDigest(m.Layers[i].Digest)
		assert.NilError(t, err)
		assert.Check(t, is.Equal(string(readLayer(t, l.Compressed)), fmt.Sprintf("layer %d\n", i)))
	}
	blobs, err := os.ReadDir(filepath.Join(opts.OCILayout, "blobs", "sha256"))
	assert.NilError(t, err)
	assert.Equal(t, len(blobs), n+2) // layers, config, manifest

	const bound = 512 << 20
	assert.Check(t, peak < bound, "peak heap in use %d MiB, bound %d MiB", peak>>20, bound>>20)
}

// TestManifestOverRegistryLimit: a manifest over 4 MiB (30,000 layers) is
// refused before any request, one line naming the limit, exit 2; an index
// whose child manifest is over it likewise. -daemon has no such limit.
func TestManifestOverRegistryLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a 30,000-layer manifest")
	}
	big := manyLayers(t, 30000)
	raw, err := big.RawManifest()
	assert.NilError(t, err)
	assert.Assert(t, len(raw) > MaxManifestBytes, "manifest of %d bytes", len(raw))
	idx := mutate.AppendManifests(empty.Index, mutate.IndexAddendum{Add: big})

	for _, tc := range []struct {
		name string
		art  Artifact
	}{
		{"image", big},
		{"index holding it", idx},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := newTestRegistry(t, nil)
			tag := reg.ref("big/app:1")
			opts := testOptions(t, tc.art, tag)
			_, err := Run(context.Background(), opts)
			assert.Check(t, errors.Is(err, badinput.Err), "not badinput.Err: %v", err)
			assertOneLine(t, err, "destination IMAGE "+mustTag(t, tag).Name(), fmt.Sprintf("%d bytes (30000 layers)", len(raw)), "more than the 4194304 bytes (4 MiB) a registry accepts")
			assert.Check(t, is.Len(reg.requests(), 0))
			assert.Check(t, !fileExists(opts.ReportPath))
		})
	}
}

func mustTag(t *testing.T, s string) name.Tag {
	t.Helper()
	tag, err := name.NewTag(s)
	assert.NilError(t, err)
	return tag
}
