package export

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// captureLogs returns a logger that writes to a buffer, and a function that
// returns what it holds.
func captureLogs(t *testing.T) (*slog.Logger, func() string) {
	t.Helper()
	var (
		mu  sync.Mutex
		buf bytes.Buffer
	)
	return slog.New(slog.NewTextHandler(lockedWriter{&mu, &buf}, nil)), func() string {
		mu.Lock()
		defer mu.Unlock()
		return buf.String()
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func appendedLayer(t *testing.T, a Artifact) v1.Hash {
	t.Helper()
	m, err := a.(v1.Image).Manifest()
	assert.NilError(t, err)
	return m.Layers[len(m.Layers)-1].Digest
}

func TestCacheReuse(t *testing.T) {
	ctx := context.Background()
	log, logs := captureLogs(t)
	base := editBase(t)
	dir := layerFixture(t, t.TempDir(), time.Unix(1, 0))
	cache := filepath.Join(t.TempDir(), "cache")
	edits := Edits{Append: []AppendSpec{{Dir: dir, Dest: "/app"}}, Created: time.Unix(1700000000, 0)}

	uncached, err := Apply(ctx, base, edits, log)
	assert.NilError(t, err)

	edits.CacheDir = cache
	compressions, streams := layerCompressions.Load(), tarStreams.Load()
	first, err := Apply(ctx, base, edits, log)
	assert.NilError(t, err)
	assert.Equal(t, layerCompressions.Load()-compressions, int64(1), "a cache miss compresses the directory once")
	assert.Equal(t, tarStreams.Load()-streams, int64(2), "and reads it twice: to hash it, to compress it")
	// Caching does not change a single byte of the result.
	assert.Equal(t, srcDigest(t, first), srcDigest(t, uncached))

	entries, err := os.ReadDir(cache)
	assert.NilError(t, err)
	assert.Assert(t, is.Len(entries, 1), "no temp files left behind")
	assert.Check(t, strings.HasSuffix(entries[0].Name(), ".tar.gz"))
	fi, err := entries[0].Info()
	assert.NilError(t, err)
	layerSize, err := first.(v1.Image).Manifest()
	assert.NilError(t, err)
	assert.Equal(t, fi.Size(), layerSize.Layers[len(layerSize.Layers)-1].Size, "the cache file is the compressed layer")

	compressions, streams = layerCompressions.Load(), tarStreams.Load()
	second, err := Apply(ctx, base, edits, log)
	assert.NilError(t, err)
	assert.Equal(t, layerCompressions.Load()-compressions, int64(0), "an unchanged directory is not compressed again")
	assert.Equal(t, tarStreams.Load()-streams, int64(1), "it is read once, to hash it: the key the entry is checked against")
	assert.Equal(t, srcDigest(t, second), srcDigest(t, first))
	assert.Check(t, is.Contains(logs(), "layer cache hit"))

	// Reading the cached layer for an upload does not rebuild it either.
	streams = tarStreams.Load()
	layers, err := second.(v1.Image).Layers()
	assert.NilError(t, err)
	listing := tarListing(t, layers[len(layers)-1])
	assert.Check(t, is.Contains(listing, "app/index.html"))
	assert.Equal(t, tarStreams.Load()-streams, int64(0))

	t.Run("a changed file is a new entry", func(t *testing.T) {
		assert.NilError(t, os.WriteFile(filepath.Join(dir, "index.html"), []byte("<h1>changed</h1>\n"), 0o644))
		compressions := layerCompressions.Load()
		changed, err := Apply(ctx, base, edits, log)
		assert.NilError(t, err)
		assert.Equal(t, layerCompressions.Load()-compressions, int64(1))
		assert.Check(t, appendedLayer(t, changed) != appendedLayer(t, first))
		entries, err := os.ReadDir(cache)
		assert.NilError(t, err)
		assert.Check(t, is.Len(entries, 2))
	})
	t.Run("another time is a new entry", func(t *testing.T) {
		e := edits
		e.Created = time.Unix(1700000001, 0)
		compressions := layerCompressions.Load()
		_, err := Apply(ctx, base, e, log)
		assert.NilError(t, err)
		assert.Equal(t, layerCompressions.Load()-compressions, int64(1))
	})
	t.Run("a changed mode is a new entry", func(t *testing.T) {
		assert.NilError(t, os.Chmod(filepath.Join(dir, "index.html"), 0o600))
		compressions := layerCompressions.Load()
		_, err := Apply(ctx, base, edits, log)
		assert.NilError(t, err)
		assert.Equal(t, layerCompressions.Load()-compressions, int64(1))
	})
}

func TestCacheFailureIsAWarning(t *testing.T) {
	ctx := context.Background()
	base := editBase(t)
	dir := layerFixture(t, t.TempDir(), time.Unix(1, 0))
	edits := Edits{Append: []AppendSpec{{Dir: dir}}, Created: time.Unix(1700000000, 0)}
	want, err := Apply(ctx, base, edits, nil)
	assert.NilError(t, err)

	t.Run("cache dir is a file", func(t *testing.T) {
		log, logs := captureLogs(t)
		notADir := filepath.Join(t.TempDir(), "file")
		srcWriteFile(t, notADir, "x")
		e := edits
		e.CacheDir = notADir
		got, err := Apply(ctx, base, e, log)
		assert.NilError(t, err)
		assert.Equal(t, srcDigest(t, got), srcDigest(t, want))
		assert.Check(t, is.Contains(logs(), "level=WARN msg=\"layer cache write failed"))
	})
	t.Run("corrupted entry is rebuilt", func(t *testing.T) {
		log, logs := captureLogs(t)
		cache := t.TempDir()
		e := edits
		e.CacheDir = cache
		_, err := Apply(ctx, base, e, log)
		assert.NilError(t, err)
		entries, err := os.ReadDir(cache)
		assert.NilError(t, err)
		assert.Assert(t, is.Len(entries, 1))
		srcWriteFile(t, filepath.Join(cache, entries[0].Name()), "\x1f\x8bnot really gzip")

		got, err := Apply(ctx, base, e, log)
		assert.NilError(t, err)
		assert.Equal(t, srcDigest(t, got), srcDigest(t, want))
		assert.Check(t, is.Contains(logs(), "layer cache entry unusable; rebuilding it"))
	})
}

// TestCacheTamperedEntryRebuilt: a cache entry replaced by another
// well-formed layer (a valid gzip'd tar, so gzip's own checksum passes) is
// found out, discarded with a warning and rebuilt: the image exported is
// the one the directory makes, never the one the file held.
func TestCacheTamperedEntryRebuilt(t *testing.T) {
	ctx := context.Background()
	base := editBase(t)
	dir := layerFixture(t, t.TempDir(), time.Unix(1, 0))
	otherDir := t.TempDir()
	srcWriteFile(t, filepath.Join(otherDir, "index.html"), "<h1>not the input</h1>\n")
	edits := Edits{Append: []AppendSpec{{Dir: dir}}, Created: time.Unix(1700000000, 0)}
	want, err := Apply(ctx, base, edits, nil)
	assert.NilError(t, err)

	cache, otherCache := t.TempDir(), t.TempDir()
	e := edits
	e.CacheDir = cache
	_, err = Apply(ctx, base, e, nil)
	assert.NilError(t, err)
	o := edits
	o.Append, o.CacheDir = []AppendSpec{{Dir: otherDir}}, otherCache
	other, err := Apply(ctx, base, o, nil)
	assert.NilError(t, err)

	entry := onlyEntry(t, cache)
	forged, err := os.ReadFile(onlyEntry(t, otherCache))
	assert.NilError(t, err)
	assert.NilError(t, os.WriteFile(entry, forged, 0o644))

	log, logs := captureLogs(t)
	got, err := Apply(ctx, base, e, log)
	assert.NilError(t, err)
	assert.Check(t, srcDigest(t, got) != srcDigest(t, other), "the tampered entry was used")
	assert.Equal(t, srcDigest(t, got), srcDigest(t, want))
	assert.Check(t, is.Contains(logs(), "level=WARN"))
	assert.Check(t, is.Contains(logs(), "does not hold the layer"))
	// Rebuilt: the entry now holds the directory's layer again.
	rebuilt, err := os.ReadFile(onlyEntry(t, cache))
	assert.NilError(t, err)
	assert.Check(t, string(rebuilt) != string(forged))
	again, err := Apply(ctx, base, e, log)
	assert.NilError(t, err)
	assert.Equal(t, srcDigest(t, again), srcDigest(t, want))

	// Replaced after it was checked, before it is read for the push: the
	// read is refused rather than sending other bytes.
	tmp := entry + ".forged"
	assert.NilError(t, os.WriteFile(tmp, forged, 0o644))
	assert.NilError(t, os.Rename(tmp, entry))
	layers, err := again.(v1.Image).Layers()
	assert.NilError(t, err)
	_, err = layers[len(layers)-1].Compressed()
	assert.ErrorContains(t, err, "changed since it was checked")
}

// onlyEntry is the one file in a cache directory.
func onlyEntry(t *testing.T, dir string) string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	assert.NilError(t, err)
	assert.Assert(t, is.Len(entries, 1), "%v", entries)
	return filepath.Join(dir, entries[0].Name())
}
