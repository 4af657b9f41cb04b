package export

import (
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/exportreport/exportreport/pkg/atomicfile"
)

// layerGzipLevel is the compression level of appended layers, cached or not
// (go-containerregistry's default, so both give the same bytes).
const layerGzipLevel = gzip.BestSpeed

// The layer cache is keyed by content: an entry is the gzip'd layer whose
// uncompressed tar stream (what writeTar makes of the directory) has the
// sha256 its name carries, <diffID hex>.tar.gz. An entry is used only after
// it was read through and found to decompress to exactly that: a corrupt
// file, or another well-formed layer put in its place, is discarded with a
// warning and rebuilt, never pushed. The same pass takes the entry's own
// digest and size, which the layer then reports, so the bytes pushed are
// the bytes checked (the registry checks them against that digest again,
// and a file replaced since is refused: cachedFile.Compressed).

// diffID hashes the directory's tar stream: one read of every file.
func (dl *dirLayer) diffID(ctx context.Context) (v1.Hash, error) {
	h := sha256.New()
	if err := dl.writeTar(ctx, h); err != nil {
		return v1.Hash{}, err
	}
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))}, nil
}

// cachedLayer returns the layer from dir's cache, building and storing it
// first if it is not there or does not hold the layer. Any cache failure is
// logged to log and the layer built without the cache.
func (dl *dirLayer) cachedLayer(ctx context.Context, dir string, log *slog.Logger) (v1.Layer, error) {
	flag := appendValue(dl.spec)
	diffID, err := dl.diffID(ctx)
	if err != nil {
		return nil, err
	}
	p := filepath.Join(dir, diffID.Hex+".tar.gz")
	if fi, err := os.Lstat(p); err == nil && fi.Mode().IsRegular() {
		l, err := checkCacheFile(p, diffID)
		if err == nil {
			log.Info("layer cache hit: not compressing again", "append", flag, "file", p)
			return partial.CompressedToLayer(l)
		}
		var wrong *wrongContentError
		if errors.As(err, &wrong) {
			log.Warn("layer cache entry does not hold the layer its name says; discarding and rebuilding it", "append", flag, "file", p, "err", err)
		} else {
			log.Warn("layer cache entry unusable; rebuilding it", "append", flag, "file", p, "err", err)
		}
		_ = os.Remove(p)
	}
	if err := dl.writeCacheFile(ctx, p, diffID); err != nil {
		if ctx.Err() != nil {
			return nil, err
		}
		var changed *dirChangedError
		if errors.As(err, &changed) {
			return nil, err
		}
		log.Warn("layer cache write failed; building the layer without the cache", "append", flag, "dir", dir, "err", err)
		return dl.layer(ctx)
	}
	l, err := checkCacheFile(p, diffID)
	if err != nil {
		log.Warn("layer cache entry unreadable; building the layer without the cache", "append", flag, "file", p, "err", err)
		return dl.layer(ctx)
	}
	log.Info("layer cached", "append", flag, "file", p)
	return partial.CompressedToLayer(l)
}

// wrongContentError: a cache entry decompresses to another layer.
type wrongContentError struct{ got, want v1.Hash }

func (e *wrongContentError) Error() string {
	return fmt.Sprintf("it decompresses to %s, the directory makes %s", e.got, e.want)
}

// dirChangedError: the directory changed between hashing and compressing
// it (the layer would not be what was hashed).
type dirChangedError struct {
	flag      string
	got, want v1.Hash
}

func (e *dirChangedError) Error() string {
	return fmt.Sprintf("-append %q: the directory changed while the layer was built (its tar stream was %s, then %s)", e.flag, e.want, e.got)
}

// checkCacheFile reads the entry at p through once: it must be a gzip
// stream decompressing to diffID. It returns the entry as a compressed
// layer of the digest and size just read.
func checkCacheFile(p string, diffID v1.Hash) (*cachedFile, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	compressed := sha256.New()
	gr, err := gzip.NewReader(io.TeeReader(f, compressed))
	if err != nil {
		return nil, err
	}
	uncompressed := sha256.New()
	if _, err := io.Copy(uncompressed, gr); err != nil {
		return nil, err
	}
	if err := gr.Close(); err != nil {
		return nil, err
	}
	// Anything after the gzip stream is part of the blob too.
	if _, err := io.Copy(compressed, f); err != nil {
		return nil, err
	}
	got := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(uncompressed.Sum(nil))}
	if got != diffID {
		return nil, &wrongContentError{got: got, want: diffID}
	}
	return &cachedFile{
		path:   p,
		info:   fi,
		digest: v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(compressed.Sum(nil))},
		diffID: diffID,
	}, nil
}

// cachedFile is a checked cache entry: a compressed layer whose digest,
// diff ID and size are those found when it was checked.
type cachedFile struct {
	path           string
	info           fs.FileInfo
	digest, diffID v1.Hash
}

func (c *cachedFile) Digest() (v1.Hash, error)            { return c.digest, nil }
func (c *cachedFile) DiffID() (v1.Hash, error)            { return c.diffID, nil }
func (c *cachedFile) Size() (int64, error)                { return c.info.Size(), nil }
func (c *cachedFile) MediaType() (types.MediaType, error) { return types.DockerLayer, nil }

// Compressed opens the entry, refusing a file that is not the one checked
// (replaced, or written to since). It returns the *os.File itself, so that
// an upload can hand it to the kernel (sendfile).
func (c *cachedFile) Compressed() (io.ReadCloser, error) {
	f, err := os.Open(c.path)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil || !os.SameFile(fi, c.info) || fi.Size() != c.info.Size() || !fi.ModTime().Equal(c.info.ModTime()) {
		f.Close()
		return nil, fmt.Errorf("layer cache entry %s changed since it was checked (%v)", c.path, err)
	}
	return f, nil
}

// layerCompressions counts directory layers compressed into the cache;
// tests use it to see that a cached layer is not compressed again.
var layerCompressions atomic.Int64

// writeCacheFile compresses the layer once into p, atomically: a failure
// leaves nothing at p. The tar stream compressed must be the one hashed
// (diffID), else the directory changed in between: an error.
func (dl *dirLayer) writeCacheFile(ctx context.Context, p string, diffID v1.Hash) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	layerCompressions.Add(1)
	return atomicfile.Write(p, 0o644, func(w io.Writer) error {
		gw, err := gzip.NewWriterLevel(w, layerGzipLevel)
		if err != nil {
			return err
		}
		rc, err := dl.opener(ctx)()
		if err != nil {
			return err
		}
		h := sha256.New()
		_, err = io.Copy(gw, io.TeeReader(rc, h))
		rc.Close()
		if err != nil {
			return err
		}
		if got := (v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))}); got != diffID {
			return &dirChangedError{flag: appendValue(dl.spec), got: got, want: diffID}
		}
		return gw.Close()
	})
}
