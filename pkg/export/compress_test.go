package export

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"gotest.tools/v3/assert"
	"gotest.tools/v3/golden"

	"github.com/exportreport/exportreport/pkg/badinput"
	"github.com/exportreport/exportreport/pkg/report"
)

// rawArchive is a docker-archive written by writeRawArchive.
type rawArchive struct {
	path    string
	diffIDs []v1.Hash
}

// writeRawArchive writes a docker-archive (as `docker save` does: layers
// uncompressed) of one image tagged tag, with one layer per size: a tar of
// one file of compressible text made from seed, so the same arguments give
// the same bytes.
func writeRawArchive(t *testing.T, dir, tag string, seed uint64, sizes ...int) rawArchive {
	t.Helper()
	out := rawArchive{path: filepath.Join(dir, "image.tar")}
	f, err := os.Create(out.path)
	assert.NilError(t, err)
	defer f.Close()
	tw := tar.NewWriter(f)
	add := func(name string, b []byte) {
		assert.NilError(t, tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg}))
		_, err := tw.Write(b)
		assert.NilError(t, err)
	}
	words := strings.Fields("image layer registry digest manifest config compress export report tag blob push pull the a of to")
	var layerNames []string
	for i, size := range sizes {
		rng := rand.New(rand.NewPCG(seed, uint64(i)))
		var text strings.Builder
		for text.Len() < size {
			fmt.Fprintf(&text, "%d %s %s %s\n", rng.IntN(1000), words[rng.IntN(len(words))], words[rng.IntN(len(words))], words[rng.IntN(len(words))])
		}
		var layer strings.Builder
		lw := tar.NewWriter(&layer)
		body := text.String()[:size]
		assert.NilError(t, lw.WriteHeader(&tar.Header{Name: fmt.Sprintf("data%d.txt", i), Mode: 0o644, Size: int64(size), Typeflag: tar.TypeReg}))
		_, err := lw.Write([]byte(body))
		assert.NilError(t, err)
		assert.NilError(t, lw.Close())
		sum := sha256.Sum256([]byte(layer.String()))
		out.diffIDs = append(out.diffIDs, v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])})
		name := hex.EncodeToString(sum[:]) + "/layer.tar"
		add(name, []byte(layer.String()))
		layerNames = append(layerNames, name)
	}
	cfg, err := json.Marshal(map[string]any{"architecture": "amd64", "os": "linux",
		"rootfs": map[string]any{"type": "layers", "diff_ids": out.diffIDs}})
	assert.NilError(t, err)
	cfgSum := sha256.Sum256(cfg)
	cfgName := hex.EncodeToString(cfgSum[:]) + ".json"
	add(cfgName, cfg)
	m, err := json.Marshal([]map[string]any{{"Config": cfgName, "RepoTags": []string{tag}, "Layers": layerNames}})
	assert.NilError(t, err)
	add("manifest.json", m)
	assert.NilError(t, tw.Close())
	assert.NilError(t, f.Close())
	return out
}

// TestCompressionDeterministic: a docker-archive of uncompressed layers
// gives the same digest whatever the number of cores (GOMAXPROCS), -jobs,
// and whether the compressed layers are kept in a scratch directory or
// compressed again when read; and run after run (the golden digests). The
// layers are 3 MiB, so pgzip cuts each into several blocks.
func TestCompressionDeterministic(t *testing.T) {
	ctx := context.Background()
	arch := writeRawArchive(t, t.TempDir(), "app:1", 14, 3<<20, 3<<20+12345, 1000)
	reg := newTestRegistry(t, nil)
	want := map[Compression]string{}
	var lines []string
	for _, c := range []Compression{CompressionGzip, CompressionZstd} {
		img, err := Open(ctx, Source{Transport: TransportDockerArchive, Path: arch.path}, WithCompression(c), WithScratchDir(t.TempDir()))
		assert.NilError(t, err)
		want[c] = digestOf(t, img)
		lines = append(lines, fmt.Sprintf("%s %s", c, want[c]))
	}
	golden.Assert(t, strings.Join(lines, "\n")+"\n", "compressed-digests.golden")

	tests := []struct {
		compression Compression
		procs, jobs int
		scratch     bool // Open with a scratch directory (Run always has one)
		run         bool // export with Run to the registry
	}{
		{CompressionGzip, 1, 1, true, true},
		{CompressionGzip, 2, 4, true, true},
		{CompressionGzip, 8, 16, true, true},
		{CompressionGzip, 1, 0, false, false},
		{CompressionGzip, 8, 0, false, false},
		{CompressionZstd, 1, 1, true, true},
		{CompressionZstd, 2, 4, true, true},
		{CompressionZstd, 8, 16, true, true},
		{CompressionZstd, 1, 0, false, false},
		{CompressionZstd, 8, 0, false, false},
	}
	for i, tc := range tests {
		t.Run(fmt.Sprintf("%s/GOMAXPROCS=%d/jobs=%d/scratch=%v", tc.compression, tc.procs, tc.jobs, tc.scratch), func(t *testing.T) {
			prev := runtime.GOMAXPROCS(tc.procs)
			t.Cleanup(func() { runtime.GOMAXPROCS(prev) })
			if !tc.run {
				opts := []SourceOption{WithCompression(tc.compression)}
				if tc.scratch {
					opts = append(opts, WithScratchDir(t.TempDir()))
				}
				img, err := Open(ctx, Source{Transport: TransportDockerArchive, Path: arch.path}, opts...)
				assert.NilError(t, err)
				assert.Equal(t, digestOf(t, img), want[tc.compression])
				// Read again (compressed again without a scratch directory):
				// the bytes have the digest the manifest names.
				layers, err := img.(v1.Image).Layers()
				assert.NilError(t, err)
				for _, l := range layers {
					assertLayerDigest(t, l)
				}
				return
			}
			opts := testOptions(t, nil, reg.ref(fmt.Sprintf("app:%d", i)))
			opts.Source = "docker-archive:" + arch.path
			opts.Jobs = tc.jobs
			opts.Compression = tc.compression
			rep, err := Run(ctx, opts)
			assert.NilError(t, err)
			assert.Equal(t, rep.Image.Digest, want[tc.compression])
			assert.Equal(t, remoteDigest(t, reg.ref(fmt.Sprintf("app:%d", i))), want[tc.compression])
		})
	}
}

// assertLayerDigest reads the layer's compressed bytes and checks their
// digest and size.
func assertLayerDigest(t *testing.T, l v1.Layer) {
	t.Helper()
	rc, err := l.Compressed()
	assert.NilError(t, err)
	defer rc.Close()
	h, n, err := v1.SHA256(rc)
	assert.NilError(t, err)
	d, err := l.Digest()
	assert.NilError(t, err)
	size, err := l.Size()
	assert.NilError(t, err)
	assert.Equal(t, h, d)
	assert.Equal(t, n, size)
}

// TestCompressionPushed: what a registry holds after an export of a
// docker-archive of uncompressed layers decompresses to the archive's
// layers, with the media types of the compression asked for; the scratch
// directory is gone when Run returns.
func TestCompressionPushed(t *testing.T) {
	ctx := context.Background()
	arch := writeRawArchive(t, t.TempDir(), "app:1", 7, 2<<20, 100)
	reg := newTestRegistry(t, nil)
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	tests := []struct {
		compression       Compression
		manifest, config  types.MediaType
		layer             types.MediaType
		wantReportMediaTy string
	}{
		{CompressionGzip, types.DockerManifestSchema2, types.DockerConfigJSON, types.DockerLayer, string(types.DockerManifestSchema2)},
		{CompressionZstd, types.OCIManifestSchema1, types.OCIConfigJSON, types.OCILayerZStd, string(types.OCIManifestSchema1)},
	}
	for _, tc := range tests {
		t.Run(string(tc.compression), func(t *testing.T) {
			ref := reg.ref("app:" + string(tc.compression))
			opts := testOptions(t, nil, ref)
			opts.Source = "docker-archive:" + arch.path
			opts.Compression = tc.compression
			rep, err := Run(ctx, opts)
			assert.NilError(t, err)
			assert.Equal(t, rep.Image.MediaType, tc.wantReportMediaTy)
			got, err := report.Read(opts.ReportPath)
			assert.NilError(t, err)
			assert.Equal(t, got.Image.Digest, rep.Image.Digest)

			r, err := name.ParseReference(ref)
			assert.NilError(t, err)
			img, err := remote.Image(r)
			assert.NilError(t, err)
			m, err := img.Manifest()
			assert.NilError(t, err)
			assert.Equal(t, m.MediaType, tc.manifest)
			assert.Equal(t, m.Config.MediaType, tc.config)
			layers, err := img.Layers()
			assert.NilError(t, err)
			assert.Equal(t, len(layers), len(arch.diffIDs))
			for i, l := range layers {
				assert.Equal(t, m.Layers[i].MediaType, tc.layer)
				rc, err := l.Uncompressed()
				assert.NilError(t, err)
				h, _, err := v1.SHA256(rc)
				rc.Close()
				assert.NilError(t, err)
				assert.Equal(t, h, arch.diffIDs[i], "layer %d", i)
				assert.Assert(t, m.Layers[i].Size < 2<<20/2 || i == 1, "layer %d not compressed: %d bytes", i, m.Layers[i].Size)
			}
			left, err := filepath.Glob(filepath.Join(tmp, "export-step-*"))
			assert.NilError(t, err)
			assert.Equal(t, len(left), 0, "scratch directories left in TMPDIR: %v", left)
		})
	}
}

// TestArchiveLayerCorrupted: a layer whose content is not what the config's
// diff ID says is refused as bad input, and no manifest is pushed (layers
// compressed before it may have been uploaded: each is uploaded as soon as
// it is compressed; nothing refers to them).
func TestArchiveLayerCorrupted(t *testing.T) {
	dir := t.TempDir()
	arch := writeRawArchive(t, dir, "app:1", 3, 5000)
	// Flip a byte of the layer's text, keeping the tar well formed.
	b, err := os.ReadFile(arch.path)
	assert.NilError(t, err)
	i := strings.Index(string(b), " image ")
	if i < 0 {
		i = strings.Index(string(b), " layer ")
	}
	assert.Assert(t, i > 0)
	b[i+1] ^= 0x20
	assert.NilError(t, os.WriteFile(arch.path, b, 0o644))

	reg := newTestRegistry(t, nil)
	opts := testOptions(t, nil, reg.ref("app:1"))
	opts.Source = "docker-archive:" + arch.path
	_, err = Run(context.Background(), opts)
	assert.ErrorIs(t, err, badinput.Err)
	assert.ErrorContains(t, err, arch.path+": layer 1 (")
	assert.ErrorContains(t, err, "layer 1")
	assert.ErrorContains(t, err, "the image config says "+arch.diffIDs[0].String())
	assert.Equal(t, reg.count("PUT", "/manifests/"), 0)
}

func TestParseCompression(t *testing.T) {
	for _, tc := range []struct {
		in, want, err string
	}{
		{"", "gzip", ""},
		{"gzip", "gzip", ""},
		{"zstd", "zstd", ""},
		{"lz4", "", `-compression "lz4": want gzip or zstd`},
		{"GZIP", "", "want gzip or zstd"},
	} {
		got, err := ParseCompression(tc.in)
		if tc.err != "" {
			assert.ErrorContains(t, err, tc.err)
			assert.ErrorIs(t, err, badinput.Err)
			continue
		}
		assert.NilError(t, err)
		assert.Equal(t, string(got), tc.want)
	}
}

// TestCompressedReExport: the layers of a docker-archive are uploaded as
// each is compressed, before the image's digest is known; an export to a
// tag that names the image already costs a manifest HEAD and no upload, and
// one to a tag naming another image (zstd over gzip) uploads its layers and
// replaces the tag.
func TestCompressedReExport(t *testing.T) {
	ctx := context.Background()
	arch := writeRawArchive(t, t.TempDir(), "app:1", 9, 1<<20, 3<<20, 500)
	reg := newTestRegistry(t, nil)
	ref := reg.ref("app:1")
	export := func(c Compression) string {
		t.Helper()
		opts := testOptions(t, nil, ref)
		opts.Source = "docker-archive:" + arch.path
		opts.Compression = c
		rep, err := Run(ctx, opts)
		assert.NilError(t, err)
		assert.Equal(t, remoteDigest(t, ref), rep.Image.Digest)
		return rep.Image.Digest
	}
	gz := export(CompressionGzip)
	assert.Equal(t, reg.count("PUT", "/blobs/uploads/"), 4) // 3 layers, the config

	reg.reset()
	assert.Equal(t, export(CompressionGzip), gz)
	assert.Equal(t, reg.count("PUT", "/blobs/"), 0)
	assert.Equal(t, reg.count("POST", "/blobs/"), 0)
	assert.Equal(t, reg.count("PUT", "/manifests/"), 0)

	reg.reset()
	zst := export(CompressionZstd)
	assert.Assert(t, zst != gz)
	// The three zstd layers, and the config again: go-containerregistry's
	// registry does not mount (Distribution would answer the POST 201).
	assert.Equal(t, reg.count("PUT", "/blobs/uploads/"), 4)
	assert.Equal(t, reg.count("PUT", "/manifests/"), 1)
}

// TestStreamedUploadStartsBeforeTheLastLayerIsCompressed: the first layer's
// upload does not wait for the others' compression (the manifest, which
// needs every layer, is built only for its PUT).
func TestStreamedUploadStartsBeforeTheLastLayerIsCompressed(t *testing.T) {
	arch := writeRawArchive(t, t.TempDir(), "app:1", 11, 100, 8<<20)
	img, err := Open(context.Background(), Source{Transport: TransportDockerArchive, Path: arch.path}, WithScratchDir(t.TempDir()),
		WithCompressJobs(1)) // one layer compressed at a time, in order
	assert.NilError(t, err)
	ls, ok := img.(layerStreamer)
	assert.Assert(t, ok, "%T is not a layerStreamer", img)
	assert.Assert(t, ls.manifestSizeBound() < MaxManifestBytes)
	blobs, err := ls.streamBlobs(mustRepo(t, "registry.example/app"))
	assert.NilError(t, err)
	assert.Equal(t, len(blobs), 3) // two layers, the config
	// The first layer is ready without the second being compressed.
	assert.NilError(t, blobs[0].Resolve())
	raw := img.(*streamingImage).raw
	assert.Assert(t, raw.layers[0].blob.digest != v1.Hash{})
	assert.Equal(t, raw.layers[1].blob.digest, v1.Hash{}, "the second layer was compressed before it was asked for")
	assertLayerDigest(t, blobs[0].Layer)
}

func mustRepo(t *testing.T, s string) name.Repository {
	t.Helper()
	r, err := name.NewRepository(s)
	assert.NilError(t, err)
	return r
}
